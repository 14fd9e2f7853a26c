// Segmentation and checksum completion for TAP offloads (see offload.cc).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace tsvtep {

struct SegmentResult {
  size_t count;        // segments written
  size_t stride;       // bytes from one segment's start to the next
  size_t last_length;  // bytes of the last segment (the others are `stride`)
};

// Completes a partial checksum (virtio_net_hdr NEEDS_CSUM) in place.
// False if csum_start/csum_offset point outside the frame.
bool FinishChecksum(uint8_t* frame, size_t length, size_t csum_start, size_t csum_offset);

// True if the frame is TCP over IPv4/IPv6 and its TCP checksum is right.
bool TcpChecksumValid(const uint8_t* frame, size_t length);

// Splits a TCP frame larger than one segment (TSO) into frames whose IP
// packets are at most max_l3 bytes and whose payload is at most gso_size,
// each behind a copy of prefix (the VXLAN header), back to back in dst.
// Fixes IP length, IPv4 ID and checksum, TCP sequence, flags and checksum.
// Returns 0, -1 if the frame is not TCP over IPv4/IPv6 (no extension
// headers), or -2 if dst is too small.
int SegmentTcp(const uint8_t* frame, size_t length, size_t gso_size, size_t max_l3, const uint8_t* prefix,
               size_t prefix_len, uint8_t* dst, size_t dst_cap, SegmentResult* result);

}  // namespace tsvtep
