// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A small, strict JSON reader and writer (RFC 8259) for safetensors headers and config files.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "attnkit/core/error.hpp"

namespace attnkit::json {

/// Malformed JSON text. The message names the source, the line and column, and the problem.
class parse_error : public error {
 public:
  explicit parse_error(const std::string& what_arg) : error(what_arg) {}
};

/// A well-formed document that does not hold what the caller asked for: a missing key, another
/// kind of value, an integer out of range. The message names the key or index.
class access_error : public error {
 public:
  explicit access_error(const std::string& what_arg) : error(what_arg) {}
};

/// The kind of a JSON value.
enum class Kind : std::uint8_t { null, boolean, number, string, array, object };

/// "null", "boolean", "number", "string", "array" or "object".
constexpr std::string_view kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::null:
      return "null";
    case Kind::boolean:
      return "boolean";
    case Kind::number:
      return "number";
    case Kind::string:
      return "string";
    case Kind::array:
      return "array";
    case Kind::object:
      return "object";
  }
  return "?";
}

/// A JSON value. Objects keep their members in document order (duplicate keys are a parse error);
/// key lookup is linear, which suits configuration files and safetensors headers. Numbers keep
/// their double value and, when the literal is an integer that fits, the exact int64.
class Value {
 public:
  using Array = std::vector<Value>;
  using Member = std::pair<std::string, Value>;
  using Object = std::vector<Member>;

  /// null.
  Value() = default;
  /// A boolean.
  static Value boolean(bool b) { return Value(b); }
  /// A number from a double (must be finite to be written by dump()).
  static Value number(double d) {
    Value v;
    v.data_ = Number{d, 0, false};
    return v;
  }
  /// An integer number, exact.
  static Value integer(std::int64_t i) {
    Value v;
    v.data_ = Number{static_cast<double>(i), i, true};
    return v;
  }
  /// A string (UTF-8).
  static Value string(std::string s) {
    Value v;
    v.data_ = std::move(s);
    return v;
  }
  /// An array.
  static Value array(Array a = {}) {
    Value v;
    v.data_ = std::move(a);
    return v;
  }
  /// An object; throws access_error on duplicate keys.
  static Value object(Object o = {}) {
    check_unique(o, "");
    Value v;
    v.data_ = std::move(o);
    return v;
  }

  Kind kind() const noexcept { return static_cast<Kind>(data_.index()); }
  bool is_null() const noexcept { return kind() == Kind::null; }
  bool is_bool() const noexcept { return kind() == Kind::boolean; }
  bool is_number() const noexcept { return kind() == Kind::number; }
  bool is_string() const noexcept { return kind() == Kind::string; }
  bool is_array() const noexcept { return kind() == Kind::array; }
  bool is_object() const noexcept { return kind() == Kind::object; }
  /// A number whose value is an integer representable as int64 (e.g. 3, -7, 4096.0, 1e3).
  bool is_integer() const noexcept {
    if (!is_number()) return false;
    const Number& n = std::get<Number>(data_);
    return n.exact || integral_double(n.d);
  }

  bool as_bool() const {
    expect(Kind::boolean);
    return std::get<bool>(data_);
  }
  double as_double() const {
    expect(Kind::number);
    return std::get<Number>(data_).d;
  }
  /// The integer value; throws access_error for a non-number, a fraction or a value beyond int64.
  std::int64_t as_int() const {
    expect(Kind::number);
    const Number& n = std::get<Number>(data_);
    if (n.exact) return n.i;
    if (!integral_double(n.d))
      throw access_error("attnkit: json: expected an integer, got " + describe());
    return static_cast<std::int64_t>(n.d);
  }
  const std::string& as_string() const {
    expect(Kind::string);
    return std::get<std::string>(data_);
  }
  const Array& as_array() const {
    expect(Kind::array);
    return std::get<Array>(data_);
  }
  Array& as_array() {
    expect(Kind::array);
    return std::get<Array>(data_);
  }
  const Object& as_object() const {
    expect(Kind::object);
    return std::get<Object>(data_);
  }

  /// Elements of an array or members of an object; throws for other kinds.
  std::size_t size() const {
    if (is_array()) return std::get<Array>(data_).size();
    if (is_object()) return std::get<Object>(data_).size();
    throw access_error("attnkit: json: size() needs an array or object, got " + describe());
  }

  /// The member `key` of an object, or nullptr when there is none; throws for a non-object.
  const Value* find(std::string_view key) const {
    for (const Member& m : as_object())
      if (m.first == key) return &m.second;
    return nullptr;
  }
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  /// The member `key` of an object; throws access_error naming the key when it is missing.
  const Value& at(std::string_view key) const {
    const Value* v = find(key);
    if (v == nullptr) throw access_error("attnkit: json: missing key \"" + std::string(key) + "\"");
    return *v;
  }
  /// The element i of an array; throws access_error when out of range.
  const Value& at(std::size_t i) const {
    const Array& a = as_array();
    if (i >= a.size())
      throw access_error("attnkit: json: index " + std::to_string(i) +
                         " out of range for an "
                         "array of " +
                         std::to_string(a.size()) + " elements");
    return a[i];
  }

  /// Adds a member to an object (throws access_error when the key exists already).
  void insert(std::string key, Value v) {
    expect(Kind::object);
    if (find(key) != nullptr) throw access_error("attnkit: json: duplicate key \"" + key + "\"");
    std::get<Object>(data_).emplace_back(std::move(key), std::move(v));
  }
  /// Appends an element to an array.
  void push_back(Value v) { as_array().push_back(std::move(v)); }

  /// Typed members of an object; errors name the key ("key \"hidden_size\": expected ...").
  std::int64_t get_int(std::string_view key) const {
    return member<std::int64_t>(key, [](const Value& v) { return v.as_int(); });
  }
  double get_double(std::string_view key) const {
    return member<double>(key, [](const Value& v) { return v.as_double(); });
  }
  bool get_bool(std::string_view key) const {
    return member<bool>(key, [](const Value& v) { return v.as_bool(); });
  }
  std::string get_string(std::string_view key) const {
    return member<std::string>(key, [](const Value& v) { return v.as_string(); });
  }
  /// The same, with a fallback when the key is missing or null.
  std::int64_t get_int(std::string_view key, std::int64_t fallback) const {
    return has_value(key) ? get_int(key) : fallback;
  }
  double get_double(std::string_view key, double fallback) const {
    return has_value(key) ? get_double(key) : fallback;
  }
  bool get_bool(std::string_view key, bool fallback) const {
    return has_value(key) ? get_bool(key) : fallback;
  }
  std::string get_string(std::string_view key, std::string fallback) const {
    return has_value(key) ? get_string(key) : fallback;
  }

  /// Compact JSON text (no spaces). Throws access_error for a non-finite number or a string that
  /// is not valid UTF-8.
  std::string dump() const {
    std::string out;
    dump_to(out);
    return out;
  }

  /// A short description for messages: the kind and, for scalars, the value.
  std::string describe() const {
    switch (kind()) {
      case Kind::null:
        return "null";
      case Kind::boolean:
        return as_bool() ? "true" : "false";
      case Kind::number: {
        std::string s;
        dump_to(s);
        return "number " + s;
      }
      case Kind::string: {
        const std::string& s = as_string();
        return "string \"" + (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "\"";
      }
      case Kind::array:
        return "an array";
      case Kind::object:
        return "an object";
    }
    return "?";
  }

  /// Appends the compact JSON text of a string (with quotes) to `out`.
  static void quote(std::string_view s, std::string& out) {
    if (!valid_utf8(s)) throw access_error("attnkit: json: string is not valid UTF-8");
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (char c : s) {
      const auto u = static_cast<unsigned char>(c);
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (u < 0x20) {
            out += "\\u00";
            out += hex[u >> 4];
            out += hex[u & 15];
          } else {
            out += c;
          }
      }
    }
    out += '"';
  }

  /// Whether `s` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
  static bool valid_utf8(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
      const std::size_t len = utf8_length(s, i);
      if (len == 0) return false;
      i += len;
    }
    return true;
  }

  /// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when it is malformed.
  static std::size_t utf8_length(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // no overlong forms
      if (c == 0xed) hi = 0x9f;  // no UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // no overlong forms
      if (c == 0xf4) hi = 0x8f;  // at most U+10FFFF
    } else {
      return 0;
    }
    if (s.size() - i < len) return 0;
    if (b(i + 1) < lo || b(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < len; ++k)
      if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
    return len;
  }

 private:
  struct Number {
    double d = 0;
    std::int64_t i = 0;
    bool exact = false;  // i holds the exact value
  };
  friend class Parser;

  explicit Value(bool b) : data_(b) {}

  static bool integral_double(double d) noexcept {
    return std::isfinite(d) && d == std::trunc(d) && d >= -9223372036854775808.0 &&
           d < 9223372036854775808.0;
  }

  void expect(Kind k) const {
    if (kind() != k)
      throw access_error("attnkit: json: expected " + std::string(kind_name(k)) + ", got " +
                         describe());
  }

  bool has_value(std::string_view key) const {
    const Value* v = find(key);
    return v != nullptr && !v->is_null();
  }

  template <class R, class F>
  R member(std::string_view key, F get) const {
    const Value& v = at(key);
    try {
      return get(v);
    } catch (const access_error& e) {
      std::string msg = e.what();
      const std::string prefix = "attnkit: json: ";
      if (msg.rfind(prefix, 0) == 0) msg = msg.substr(prefix.size());
      throw access_error("attnkit: json: key \"" + std::string(key) + "\": " + msg);
    }
  }

  static void check_unique(const Object& o, std::string_view where) {
    std::vector<std::string_view> keys;
    keys.reserve(o.size());
    for (const Member& m : o) keys.push_back(m.first);
    std::sort(keys.begin(), keys.end());
    const auto dup = std::adjacent_find(keys.begin(), keys.end());
    if (dup != keys.end())
      throw access_error("attnkit: json: " + std::string(where) + "duplicate key \"" +
                         std::string(*dup) + "\"");
  }

  void dump_to(std::string& out) const {
    switch (kind()) {
      case Kind::null:
        out += "null";
        return;
      case Kind::boolean:
        out += std::get<bool>(data_) ? "true" : "false";
        return;
      case Kind::number: {
        const Number& n = std::get<Number>(data_);
        char buf[64];
        std::to_chars_result r{};
        if (n.exact) {
          r = std::to_chars(buf, buf + sizeof buf, n.i);
        } else {
          if (!std::isfinite(n.d))
            throw access_error("attnkit: json: cannot write a non-finite number");
          r = std::to_chars(buf, buf + sizeof buf, n.d);
        }
        out.append(buf, r.ptr);
        return;
      }
      case Kind::string:
        quote(std::get<std::string>(data_), out);
        return;
      case Kind::array: {
        out += '[';
        bool first = true;
        for (const Value& v : std::get<Array>(data_)) {
          if (!first) out += ',';
          first = false;
          v.dump_to(out);
        }
        out += ']';
        return;
      }
      case Kind::object: {
        out += '{';
        bool first = true;
        for (const Member& m : std::get<Object>(data_)) {
          if (!first) out += ',';
          first = false;
          quote(m.first, out);
          out += ':';
          m.second.dump_to(out);
        }
        out += '}';
        return;
      }
    }
  }

  std::variant<std::monostate, bool, Number, std::string, Array, Object> data_;
};

/// Deepest nesting of arrays and objects parse() accepts.
inline constexpr int max_depth = 256;

/// The recursive-descent parser behind json::parse.
class Parser {
 public:
  Parser(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  Value parse_document() {
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;  // a UTF-8 byte order mark is ignored
    skip_ws();
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected trailing characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }
  [[noreturn]] void fail_at(std::size_t at, const std::string& what) const {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string where = source_.empty() ? std::string("json") : std::string(source_);
    throw parse_error("attnkit: " + where + ": line " + std::to_string(line) + ", column " +
                      std::to_string(col) + ": " + what);
  }

  bool at_end() const noexcept { return pos_ >= s_.size(); }
  char peek() const noexcept { return at_end() ? '\0' : s_[pos_]; }

  void skip_ws() noexcept {
    while (!at_end()) {
      const char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void expect_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit)
      fail("invalid literal (expected " + std::string(lit) + ")");
    pos_ += lit.size();
  }

  Value parse_value(int depth) {
    if (at_end()) fail("unexpected end of input, expected a value");
    const char c = s_[pos_];
    switch (c) {
      case '{':
        return parse_object(depth + 1);
      case '[':
        return parse_array(depth + 1);
      case '"':
        return Value::string(parse_string());
      case 't':
        expect_literal("true");
        return Value::boolean(true);
      case 'f':
        expect_literal("false");
        return Value::boolean(false);
      case 'n':
        expect_literal("null");
        return Value();
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
        if (static_cast<unsigned char>(c) >= 0x80 && Value::utf8_length(s_, pos_) == 0)
          fail("invalid UTF-8 byte");
        fail(std::string("unexpected character '") + printable(c) + "', expected a value");
    }
  }

  static std::string printable(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return std::string(1, c);
    static constexpr char hex[] = "0123456789abcdef";
    return std::string("\\x") + hex[u >> 4] + hex[u & 15];
  }

  Value parse_object(int depth) {
    if (depth > max_depth) fail("nesting deeper than " + std::to_string(max_depth) + " levels");
    const std::size_t start = pos_;
    ++pos_;  // '{'
    Value::Object members;
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return Value::object();
    }
    for (;;) {
      skip_ws();
      if (peek() != '"') fail("expected a string key in the object");
      std::string key = parse_string();
      skip_ws();
      if (peek() != ':') fail("expected ':' after the object key \"" + key + "\"");
      ++pos_;
      skip_ws();
      Value v = parse_value(depth);
      members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        break;
      }
      fail("expected ',' or '}' in the object");
    }
    try {
      Value::check_unique(members, "");
    } catch (const access_error& e) {
      std::string msg = e.what();
      fail_at(start, msg.substr(std::string("attnkit: json: ").size()) + " in the object");
    }
    Value v;
    v.data_ = std::move(members);
    return v;
  }

  Value parse_array(int depth) {
    if (depth > max_depth) fail("nesting deeper than " + std::to_string(max_depth) + " levels");
    ++pos_;  // '['
    Value::Array elems;
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return Value::array();
    }
    for (;;) {
      skip_ws();
      elems.push_back(parse_value(depth));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        break;
      }
      fail("expected ',' or ']' in the array");
    }
    return Value::array(std::move(elems));
  }

  unsigned parse_hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else
        fail("invalid hex digit in a \\u escape");
    }
    return v;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      const char c = s_[pos_];
      const auto u = static_cast<unsigned char>(c);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        ++pos_;
        if (at_end()) fail("unterminated escape in a string");
        const char e = s_[pos_++];
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            std::uint32_t cp = parse_hex4();
            if (cp >= 0xdc00 && cp <= 0xdfff) fail("lone low surrogate in a \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
              if (s_.substr(pos_, 2) != "\\u")
                fail("high surrogate not followed by a low surrogate");
              pos_ += 2;
              const std::uint32_t lo = parse_hex4();
              if (lo < 0xdc00 || lo > 0xdfff)
                fail("high surrogate not followed by a low surrogate");
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            append_utf8(out, cp);
            break;
          }
          default:
            --pos_;
            fail(std::string("invalid escape '\\") + printable(e) + "' in a string");
        }
        continue;
      }
      if (u < 0x20) fail("unescaped control character " + printable(c) + " in a string");
      if (u < 0x80) {
        out += c;
        ++pos_;
        continue;
      }
      const std::size_t len = Value::utf8_length(s_, pos_);
      if (len == 0) fail("invalid UTF-8 byte in a string");
      out.append(s_.substr(pos_, len));
      pos_ += len;
    }
  }

  Value parse_number() {
    const std::size_t start = pos_;
    bool integral = true;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      fail("invalid number: expected a digit");
    }
    if (peek() == '.') {
      integral = false;
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("invalid number: expected a digit after '.'");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    long long exp10 = 0;
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos_;
      bool neg = false;
      if (peek() == '+' || peek() == '-') neg = s_[pos_++] == '-';
      if (!(peek() >= '0' && peek() <= '9'))
        fail("invalid number: expected a digit in the exponent");
      while (peek() >= '0' && peek() <= '9') {
        if (exp10 < 1000000) exp10 = exp10 * 10 + (s_[pos_] - '0');
        ++pos_;
      }
      if (neg) exp10 = -exp10;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    Value v;
    Value::Number n;
    if (integral) {
      std::int64_t i = 0;
      const auto r = std::from_chars(first, last, i);
      // "-0" stays a double so that it keeps its sign.
      if (r.ec == std::errc() && r.ptr == last && !(i == 0 && *first == '-')) {
        n.i = i;
        n.exact = true;
      }
    }
    const auto r = std::from_chars(first, last, n.d);
    if (r.ec == std::errc::result_out_of_range) {
      // Overflow is an error; underflow (a tiny magnitude) reads as a signed zero.
      if (exp10 < 0 && !huge_mantissa(first, last)) {
        n.d = *first == '-' ? -0.0 : 0.0;
      } else {
        fail_at(start, "number out of the range of a double");
      }
    } else if (r.ec != std::errc() || r.ptr != last) {
      fail_at(start, "invalid number");
    }
    v.data_ = n;
    return v;
  }

  // Whether the digits before the exponent make the number large despite a negative exponent
  // (e.g. 1000...000e-5): then an out-of-range result is an overflow, not an underflow.
  static bool huge_mantissa(const char* first, const char* last) {
    std::size_t int_digits = 0;
    const char* p = first;
    if (*p == '-') ++p;
    while (p != last && *p >= '0' && *p <= '9') {
      ++int_digits;
      ++p;
    }
    return int_digits > 300;
  }

  std::string_view s_;
  std::string_view source_;
  std::size_t pos_ = 0;
};

/// Parses a complete JSON document. `source` (a file name) starts every error message.
/// Rejects: invalid UTF-8, unescaped control characters, lone surrogates in \u escapes, duplicate
/// keys, nesting deeper than max_depth, numbers beyond double range, trailing characters.
/// A leading UTF-8 byte order mark is ignored.
inline Value parse(std::string_view text, std::string_view source = {}) {
  return Parser(text, source).parse_document();
}

/// Reads and parses the JSON file at `path` (named in every error); throws attnkit::error
/// "PATH: cannot open (no such file?)" when it cannot be opened.
inline Value parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error("attnkit: " + path + ": cannot open (no such file?)");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse(text, path);
}

}  // namespace attnkit::json
