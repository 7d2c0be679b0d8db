// kv_pages.h — which KV cache rows belong to which sequence: a pool of fixed-size pages shared by all
// sequences (block tables, as vLLM's paged attention), reference-counted so that sequences can share
// a prefix and copy a page only when one of them writes into it (copy-on-write).
//
// Pure bookkeeping on the host: page p is rows [p * page_size, (p + 1) * page_size) of every layer's
// cache pool on every backend (runtime/backend.h KvCacheLayer), so one block table serves all layers.
// The caller (Transformer) moves the bytes when this class asks for a page copy.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace xelm {

using SeqId = int32_t;

// Copy the rows of page `from` into page `to` (every layer) before anything else touches `to`.
struct PageCopy {
  int32_t from;
  int32_t to;
};

class KvPages {
 public:
  KvPages(int64_t n_pages, int64_t page_size);

  int64_t page_size() const { return page_size_; }
  int64_t n_pages() const { return static_cast<int64_t>(refs_.size()); }
  int64_t n_free() const { return static_cast<int64_t>(free_.size()); }
  int64_t n_used() const { return n_pages() - n_free(); }

  // A new empty sequence.
  SeqId create();
  // Drops the sequence; pages no other sequence holds return to the pool.
  void release(SeqId seq);
  bool exists(SeqId seq) const;
  // Sequences that exist, in id order.
  std::vector<SeqId> sequences() const;

  int64_t length(SeqId seq) const;
  std::span<const int32_t> block_table(SeqId seq) const;
  // Cache row of position pos (< length, or within the pages prepare_write gave) of the sequence.
  int64_t row_of(SeqId seq, int64_t pos) const;

  // A new sequence holding the first n positions of `src` (all when n < 0) in shared pages.
  SeqId fork(SeqId src, int64_t n = -1);
  // dst becomes what src is (shared pages); its own pages are released first. Snapshot = fork,
  // restore = assign(seq, snapshot).
  void assign(SeqId dst, SeqId src);
  // Forgets positions >= n (n <= length); pages no longer covering a position are released.
  void truncate(SeqId seq, int64_t n);

  // Pages a write of positions [begin, end) into the sequence would take from the pool (new pages,
  // and private copies of shared pages it touches).
  int64_t pages_needed(SeqId seq, int64_t begin, int64_t end) const;
  // Makes positions [begin, end) writable (begin <= length): appends pages up to `end` and replaces
  // each shared page in the range by a private copy, returning the copies the caller must make.
  // Returns false and changes nothing when the pool has too few free pages. The length is unchanged.
  bool prepare_write(SeqId seq, int64_t begin, int64_t end, std::vector<PageCopy>& copies);
  // Sets the sequence's length (<= the positions its pages cover), after its rows were written.
  void set_length(SeqId seq, int64_t n);

  // How many sequences hold page p (0: free).
  int32_t references(int32_t page) const { return refs_[static_cast<size_t>(page)]; }

 private:
  struct Sequence {
    bool live = false;
    int64_t length = 0;
    std::vector<int32_t> pages;
  };
  Sequence& seq_ref(SeqId seq);
  const Sequence& seq_ref(SeqId seq) const;
  int32_t take_page();
  void drop_page(int32_t page);

  int64_t page_size_;
  std::vector<int32_t> refs_;  // [n_pages] sequences holding each page
  std::vector<int32_t> free_;  // free pages, taken from the back (lowest first)
  std::vector<Sequence> seqs_;
};

}  // namespace xelm
