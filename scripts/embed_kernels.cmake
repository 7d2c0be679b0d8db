# embed_kernels.cmake — run by the build (cmake -P): turns kernels/*.cl into a C++ source with one
# string per file, so the xelm binary carries its OpenCL sources and needs no files at run time.
# Inputs: -DOUTPUT=<generated .cpp> -DSOURCES=<;-list of .cl files>
set(body "// Generated from kernels/*.cl by scripts/embed_kernels.cmake. Do not edit.\n")
string(APPEND body "#include \"host/embedded_kernels.h\"\n\nnamespace xelm::opencl {\n\n")
string(APPEND body "const std::vector<EmbeddedKernelSource>& embedded_kernel_sources() {\n")
string(APPEND body "  static const std::vector<EmbeddedKernelSource> sources = {\n")
foreach(path ${SOURCES})
  get_filename_component(name ${path} NAME)
  file(READ ${path} text)
  string(APPEND body "      {\"${name}\", R\"xelm_cl(${text})xelm_cl\"},\n")
endforeach()
string(APPEND body "  };\n  return sources;\n}\n\n}  // namespace xelm::opencl\n")
file(WRITE ${OUTPUT}.tmp "${body}")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
