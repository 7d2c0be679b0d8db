# embed_kernels.cmake — run by the build (cmake -P): turns kernels/*.cl (the programs) and
# kernels/*.h (what host and kernels share, put in front of every program) into a C++ source with
# one string per file, so the xelm binary carries its OpenCL sources and needs no files at run time.
# Inputs: -DOUTPUT=<generated .cpp> -DSOURCES=<;-list of .cl files> -DHEADERS=<;-list of .h files>
function(append_files function_name files)
  string(APPEND body "const std::vector<EmbeddedKernelSource>& ${function_name}() {\n")
  string(APPEND body "  static const std::vector<EmbeddedKernelSource> sources = {\n")
  foreach(path ${files})
    get_filename_component(name ${path} NAME)
    file(READ ${path} text)
    string(APPEND body "      {\"${name}\", R\"xelm_cl(${text})xelm_cl\"},\n")
  endforeach()
  string(APPEND body "  };\n  return sources;\n}\n\n")
  set(body "${body}" PARENT_SCOPE)
endfunction()

set(body "// Generated from kernels/*.cl and kernels/*.h by scripts/embed_kernels.cmake. Do not edit.\n")
string(APPEND body "#include \"host/embedded_kernels.h\"\n\nnamespace xelm::opencl {\n\n")
append_files(embedded_kernel_sources "${SOURCES}")
append_files(embedded_kernel_headers "${HEADERS}")
string(APPEND body "}  // namespace xelm::opencl\n")
file(WRITE ${OUTPUT}.tmp "${body}")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
