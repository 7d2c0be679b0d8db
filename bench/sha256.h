// sha256.h — SHA-256 for the tune store's model and device keys: a small RAII wrapper over OpenSSL's
// libcrypto (EVP), so the hashing itself is the well-kept library's.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "runtime/error.h"

namespace xelm::bench {

class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
    if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) throw Error("sha256: OpenSSL init failed");
  }
  void update(std::span<const uint8_t> data) {
    if (EVP_DigestUpdate(context_.get(), data.data(), data.size()) != 1) throw Error("sha256: OpenSSL update failed");
  }
  void update(const std::string& text) {
    update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }
  // The object must not be updated afterwards.
  std::array<uint8_t, 32> finish() {
    std::array<uint8_t, 32> digest{};
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(context_.get(), digest.data(), &length) != 1 || length != digest.size()) {
      throw Error("sha256: OpenSSL final failed");
    }
    return digest;
  }
  std::string finish_hex() {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (const uint8_t byte : finish()) {
      hex += kHex[byte >> 4];
      hex += kHex[byte & 15];
    }
    return hex;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context_;
};

}  // namespace xelm::bench
