// Packed sequences (the official H-Net's packed mode, flash-attn's varlen
// layout): the valid rows of a padded batch (B, Lmax, ...) with lengths laid
// end to end in one row (1, T, ...), T = sum of lengths, with boundaries
// cu_seqlens = [0, L0, L0+L1, ..., T]. Inner H-Net stages see rows of unequal
// chunk counts; packed, their stacks spend nothing on padding. Mixers reset
// their state at each sequence start (Mamba2, Attention) or fall back to the
// padded form (Mixer::forward_packed).
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace dynarch {

struct PackedSeqs {
  at::Tensor cu_seqlens;         // (N + 1) int64 on the data's device: strictly increasing, 0 .. T
  std::vector<int64_t> offsets;  // the same on the host (loops over sequences, kernel arguments)
  at::Tensor index;              // (T) int64: flat padded position b * Lmax + t of packed row i
  at::Tensor rows;               // (N) int64: the padded row of each sequence (empty rows are skipped)
  at::Tensor seq_start;          // (T) int64 on the host: the start of each position's sequence
  at::Tensor seq_start_device;   // the same on the data's device, copied once (= seq_start on the CPU)
  int64_t batch = 0, max_len = 0;  // the padded shape (B, Lmax) that unpack restores

  int64_t count() const { return (int64_t)offsets.size() - 1; }
  int64_t total() const { return offsets.empty() ? 0 : offsets.back(); }
  int64_t length(int64_t i) const { return offsets[i + 1] - offsets[i]; }
  // (B) int64 lengths of the padded form (0 for rows without a sequence).
  at::Tensor lengths() const;
  // (T) int64 on the host: the start of the sequence each packed position belongs to.
  const at::Tensor& starts() const { return seq_start; }
  // The same on device d: the copy made with the packing (no transfer per
  // layer); another device gets a fresh copy.
  at::Tensor starts_on(const at::Device& d) const;
};

// Checks cu_seqlens (1-D integer, starts at 0, strictly increasing, ends at
// total); fails with a message naming what is wrong.
void check_cu_seqlens(const at::Tensor& cu_seqlens, int64_t total);

// The packing of a padded batch with these lengths (B) (rows of length 0 get no sequence).
PackedSeqs packing_from_lengths(const at::Tensor& lengths, int64_t max_len);
// A packing of one packed row given by its boundaries (checked): sequence i
// is padded row i; max_len = the longest sequence.
PackedSeqs packing_from_cu_seqlens(const at::Tensor& cu_seqlens, int64_t total);

// (B, Lmax, ...) -> (1, T, ...): the valid rows end to end.
at::Tensor pack(const at::Tensor& x, const PackedSeqs& s);
// (1, T, ...) -> (B, Lmax, ...): back, zeros at padded positions.
at::Tensor unpack(const at::Tensor& x, const PackedSeqs& s);

}  // namespace dynarch
