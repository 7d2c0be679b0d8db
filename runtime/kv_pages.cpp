// kv_pages.cpp — page pool, block tables, reference counts and copy-on-write of runtime/kv_pages.h.
#include "runtime/kv_pages.h"

#include <algorithm>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm {

KvPages::KvPages(int64_t n_pages, int64_t page_size) : page_size_(page_size) {
  if (n_pages < 1 || page_size < 1) {
    throw Error(fmt::format("internal: KV page pool of {} pages of {} positions", n_pages, page_size));
  }
  refs_.assign(static_cast<size_t>(n_pages), 0);
  free_.resize(static_cast<size_t>(n_pages));
  for (int64_t i = 0; i < n_pages; ++i) free_[static_cast<size_t>(i)] = static_cast<int32_t>(n_pages - 1 - i);
}

KvPages::Sequence& KvPages::seq_ref(SeqId seq) {
  return const_cast<Sequence&>(static_cast<const KvPages*>(this)->seq_ref(seq));
}

const KvPages::Sequence& KvPages::seq_ref(SeqId seq) const {
  if (!exists(seq)) throw Error(fmt::format("internal: sequence {} does not exist", seq));
  return seqs_[static_cast<size_t>(seq)];
}

bool KvPages::exists(SeqId seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[static_cast<size_t>(seq)].live;
}

std::vector<SeqId> KvPages::sequences() const {
  std::vector<SeqId> out;
  for (size_t i = 0; i < seqs_.size(); ++i) {
    if (seqs_[i].live) out.push_back(static_cast<SeqId>(i));
  }
  return out;
}

SeqId KvPages::create() {
  auto slot = std::find_if(seqs_.begin(), seqs_.end(), [](const Sequence& s) { return !s.live; });
  if (slot == seqs_.end()) slot = seqs_.insert(seqs_.end(), Sequence{});
  slot->live = true;
  slot->length = 0;
  slot->pages.clear();
  return static_cast<SeqId>(slot - seqs_.begin());
}

void KvPages::release(SeqId seq) {
  Sequence& s = seq_ref(seq);
  for (int32_t page : s.pages) drop_page(page);
  s = Sequence{};
}

int64_t KvPages::length(SeqId seq) const { return seq_ref(seq).length; }

std::span<const int32_t> KvPages::block_table(SeqId seq) const { return seq_ref(seq).pages; }

int64_t KvPages::row_of(SeqId seq, int64_t pos) const {
  const Sequence& s = seq_ref(seq);
  const auto page = static_cast<size_t>(pos / page_size_);
  if (pos < 0 || page >= s.pages.size()) {
    throw Error(fmt::format("internal: position {} of sequence {} has no page", pos, seq));
  }
  return static_cast<int64_t>(s.pages[page]) * page_size_ + pos % page_size_;
}

SeqId KvPages::fork(SeqId src, int64_t n) {
  const int64_t length = seq_ref(src).length;
  if (n < 0) n = length;
  if (n > length) throw Error(fmt::format("internal: fork of {} positions from a sequence of {}", n, length));
  const SeqId dst = create();
  Sequence& d = seqs_[static_cast<size_t>(dst)];
  const Sequence& s = seqs_[static_cast<size_t>(src)];
  const auto n_pages = static_cast<size_t>((n + page_size_ - 1) / page_size_);
  d.pages.assign(s.pages.begin(), s.pages.begin() + static_cast<std::ptrdiff_t>(n_pages));
  for (int32_t page : d.pages) ++refs_[static_cast<size_t>(page)];
  d.length = n;
  return dst;
}

void KvPages::assign(SeqId dst, SeqId src) {
  if (dst == src) return;
  const Sequence& s = seq_ref(src);
  Sequence& d = seq_ref(dst);
  for (int32_t page : s.pages) ++refs_[static_cast<size_t>(page)];  // before dropping: they may be the same pages
  for (int32_t page : d.pages) drop_page(page);
  d.pages = s.pages;
  d.length = s.length;
}

void KvPages::truncate(SeqId seq, int64_t n) {
  Sequence& s = seq_ref(seq);
  if (n < 0 || n > s.length) {
    throw Error(fmt::format("internal: truncate to {} with {} positions cached", n, s.length));
  }
  const auto keep = static_cast<size_t>((n + page_size_ - 1) / page_size_);
  for (size_t i = keep; i < s.pages.size(); ++i) drop_page(s.pages[i]);
  s.pages.resize(keep);
  s.length = n;
}

int64_t KvPages::pages_needed(SeqId seq, int64_t begin, int64_t end) const {
  const Sequence& s = seq_ref(seq);
  if (end <= begin) return 0;
  const int64_t first = begin / page_size_, last = (end - 1) / page_size_;
  int64_t needed = 0;
  for (int64_t p = first; p <= last; ++p) {
    if (p >= static_cast<int64_t>(s.pages.size()) || refs_[static_cast<size_t>(s.pages[static_cast<size_t>(p)])] > 1) {
      ++needed;
    }
  }
  return needed;
}

bool KvPages::prepare_write(SeqId seq, int64_t begin, int64_t end, std::vector<PageCopy>& copies) {
  Sequence& s = seq_ref(seq);
  if (begin < 0 || begin > s.length || end < begin) {
    throw Error(fmt::format("internal: write of positions {}..{} into a sequence of {}", begin, end, s.length));
  }
  if (pages_needed(seq, begin, end) > n_free()) return false;
  if (end == begin) return true;
  const int64_t first = begin / page_size_, last = (end - 1) / page_size_;
  for (int64_t p = first; p <= last; ++p) {
    if (p >= static_cast<int64_t>(s.pages.size())) {
      s.pages.push_back(take_page());
      continue;
    }
    int32_t& page = s.pages[static_cast<size_t>(p)];
    if (refs_[static_cast<size_t>(page)] > 1) {  // shared: write into a private copy
      const int32_t copy = take_page();
      // Only positions before `begin` hold data the copy must keep.
      if (p * page_size_ < begin) copies.push_back({page, copy});
      drop_page(page);
      page = copy;
    }
  }
  return true;
}

void KvPages::set_length(SeqId seq, int64_t n) {
  Sequence& s = seq_ref(seq);
  if (n < 0 || n > static_cast<int64_t>(s.pages.size()) * page_size_) {
    throw Error(fmt::format("internal: length {} for a sequence with {} pages", n, s.pages.size()));
  }
  s.length = n;
}

int32_t KvPages::take_page() {
  const int32_t page = free_.back();
  free_.pop_back();
  refs_[static_cast<size_t>(page)] = 1;
  return page;
}

void KvPages::drop_page(int32_t page) {
  if (--refs_[static_cast<size_t>(page)] == 0) free_.push_back(page);
}

}  // namespace xelm
