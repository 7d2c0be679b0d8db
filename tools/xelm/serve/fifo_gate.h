// fifo_gate.h — lets one request at a time use the model, in arrival order: a ticket lock (a plain
// mutex makes no promise about who goes next, so a busy client could starve another). close()
// turns everyone still waiting away, for shutdown.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

namespace xelm::serve {

class FifoGate {
 public:
  // Held while a request uses the model; leaving (destruction) lets the next ticket in.
  class Turn {
   public:
    explicit Turn(FifoGate* gate) : gate_(gate) {}
    Turn(Turn&& other) noexcept : gate_(other.gate_) { other.gate_ = nullptr; }
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    Turn& operator=(Turn&&) = delete;
    ~Turn() {
      if (gate_ != nullptr) gate_->leave();
    }

   private:
    FifoGate* gate_;
  };

  // Waits until every earlier caller has left; nullopt when the gate was closed meanwhile.
  // `ahead` (optional) receives how many were in front on arrival.
  std::optional<Turn> enter(uint64_t* ahead = nullptr) {
    std::unique_lock lock(mutex_);
    const uint64_t ticket = next_ticket_++;
    if (ahead != nullptr) *ahead = ticket - serving_;
    changed_.wait(lock, [&] { return closed_ || serving_ == ticket; });
    if (closed_) return std::nullopt;
    return Turn(this);
  }

  // Requests inside or waiting.
  uint64_t occupancy() const {
    std::lock_guard lock(mutex_);
    return next_ticket_ - serving_;
  }

  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }

 private:
  void leave() {
    std::lock_guard lock(mutex_);
    ++serving_;
    changed_.notify_all();
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t next_ticket_ = 0, serving_ = 0;
  bool closed_ = false;
};

}  // namespace xelm::serve
