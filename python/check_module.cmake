# python/check_module.cmake: run after linking sageattn._C (python/CMakeLists.txt).
#   cmake -DREADELF=readelf -DMODULE=path/to/_C...so -P check_module.cmake
# Fails the build when the module does not load the shared libstdc++.so.6, i.e. when it carries a
# static copy of libstdc++ of its own: two libstdc++ in one process (torch loads the shared one)
# crash in iostream/locale code.
execute_process(COMMAND "${READELF}" -d "${MODULE}" OUTPUT_VARIABLE dyn RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(WARNING "check_module: '${READELF} -d ${MODULE}' failed (${rc}); not checked")
  return()
endif()
if(NOT dyn MATCHES "NEEDED[^\n]*libstdc\\+\\+\\.so")
  message(FATAL_ERROR "check_module: ${MODULE} does not need libstdc++.so: it links a static "
          "libstdc++ (-static-libstdc++ in LDFLAGS/CMAKE_*_LINKER_FLAGS or the compiler's specs?). "
          "A second libstdc++ next to the process's one crashes; build without it.")
endif()
