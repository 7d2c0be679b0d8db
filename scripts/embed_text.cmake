# embed_text.cmake — run by the build (cmake -P): turns one text file into a C++ source defining
# `std::string_view NAMESPACE::FUNCTION()` returning its contents, so the binary carries the file.
# Inputs: -DINPUT=<text file> -DOUTPUT=<generated .cpp> -DHEADER=<include path> -DNAMESPACE=<ns> -DFUNCTION=<name>
file(READ ${INPUT} text)
set(body "// Generated from ${INPUT} by scripts/embed_text.cmake. Do not edit.\n")
string(APPEND body "#include \"${HEADER}\"\n\nnamespace ${NAMESPACE} {\n\n")
string(APPEND body "std::string_view ${FUNCTION}() {\n  static constexpr std::string_view text = R\"xelm_text(${text})xelm_text\";\n  return text;\n}\n\n")
string(APPEND body "}  // namespace ${NAMESPACE}\n")
file(WRITE ${OUTPUT}.tmp "${body}")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
