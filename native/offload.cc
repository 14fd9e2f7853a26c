// Segmentation and checksum completion for frames the TAP hands over with
// offloads on (TSO, partial checksums). Pure byte work on JavaScript's
// buffers: no I/O, no policy. It lives in C++ because it touches every byte
// of payload (checksums), which JavaScript does several times slower.

#include "offload.h"

#include <string.h>

namespace tsvtep {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpCwr = 0x80;

inline uint16_t Get16(const uint8_t* p) { return (uint16_t)((p[0] << 8) | p[1]); }
inline uint32_t Get32(const uint8_t* p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
inline void Put16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
inline void Put32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

// Ones-complement sum of big-endian 16-bit words, accumulated wide.
uint64_t Sum(const uint8_t* p, size_t n, uint64_t acc) {
  while (n >= 4) {
    acc += Get32(p);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    acc += Get16(p);
    p += 2;
    n -= 2;
  }
  if (n == 1) acc += (uint32_t)p[0] << 8;
  return acc;
}

uint16_t Fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

struct Layout {
  size_t l3;      // offset of the IP header in the frame
  size_t l4;      // offset of the TCP header
  size_t headers; // bytes of Ethernet + IP + TCP headers
  bool ipv4;
};

// Finds the IP and TCP headers of a TCP frame; false if it is anything else.
bool ParseTcp(const uint8_t* frame, size_t length, Layout* out) {
  if (length < 14) return false;
  size_t l3 = 14;
  uint16_t type = Get16(frame + 12);
  if (type == kEtherTypeVlan) {
    if (length < 18) return false;
    type = Get16(frame + 16);
    l3 = 18;
  }
  size_t l4;
  if (type == kEtherTypeIpv4) {
    if (length < l3 + 20) return false;
    size_t ihl = (size_t)(frame[l3] & 0x0f) * 4;
    if ((frame[l3] >> 4) != 4 || ihl < 20 || frame[l3 + 9] != kProtoTcp) return false;
    l4 = l3 + ihl;
    out->ipv4 = true;
  } else if (type == kEtherTypeIpv6) {
    if (length < l3 + 40 || (frame[l3] >> 4) != 6 || frame[l3 + 6] != kProtoTcp) return false;
    l4 = l3 + 40;
    out->ipv4 = false;
  } else {
    return false;
  }
  if (length < l4 + 20) return false;
  size_t tcp = (size_t)(frame[l4 + 12] >> 4) * 4;
  if (tcp < 20 || length < l4 + tcp) return false;
  out->l3 = l3;
  out->l4 = l4;
  out->headers = l4 + tcp;
  return true;
}

// Sum of the TCP pseudo-header without the length (added per segment).
uint64_t PseudoHeaderSum(const uint8_t* frame, const Layout& layout) {
  const uint8_t* ip = frame + layout.l3;
  uint64_t sum = kProtoTcp;
  if (layout.ipv4) return Sum(ip + 12, 8, sum);
  return Sum(ip + 8, 32, sum);
}

}  // namespace

bool FinishChecksum(uint8_t* frame, size_t length, size_t csum_start, size_t csum_offset) {
  if (csum_start + csum_offset + 2 > length) return false;
  // The field already holds the folded pseudo-header sum; summing from
  // csum_start to the end over it gives the complete checksum.
  uint8_t* field = frame + csum_start + csum_offset;
  uint16_t sum = Fold(Sum(frame + csum_start, length - csum_start, 0));
  uint16_t result = (uint16_t)~sum;
  // For UDP a zero checksum means "none"; send the equivalent 0xffff.
  Put16(field, result == 0 ? 0xffff : result);
  return true;
}

bool TcpChecksumValid(const uint8_t* frame, size_t length) {
  Layout layout;
  if (!ParseTcp(frame, length, &layout)) return false;
  size_t tcp_length = length - layout.l4;
  if (layout.ipv4) {
    // The IP total length, not the frame, says where the segment ends (Ethernet may pad).
    size_t total = Get16(frame + layout.l3 + 2);
    if (layout.l3 + total > length || total < layout.l4 - layout.l3) return false;
    tcp_length = total - (layout.l4 - layout.l3);
  } else {
    size_t payload = Get16(frame + layout.l3 + 4);
    if (layout.l3 + 40 + payload > length) return false;
    tcp_length = payload;
  }
  uint64_t sum = PseudoHeaderSum(frame, layout) + tcp_length;
  return Fold(Sum(frame + layout.l4, tcp_length, sum)) == 0xffff;
}

int SegmentTcp(const uint8_t* frame, size_t length, size_t gso_size, size_t max_l3, const uint8_t* prefix,
               size_t prefix_len, uint8_t* dst, size_t dst_cap, SegmentResult* result) {
  Layout layout;
  if (gso_size == 0 || !ParseTcp(frame, length, &layout)) return -1;
  size_t ip_and_tcp = layout.headers - layout.l3;
  if (max_l3 <= ip_and_tcp) return -1;
  size_t mss = gso_size;
  if (mss > max_l3 - ip_and_tcp) mss = max_l3 - ip_and_tcp;
  size_t payload = length - layout.headers;
  if (payload == 0) return -1;
  size_t count = (payload + mss - 1) / mss;
  size_t stride = prefix_len + layout.headers + mss;
  size_t last_payload = payload - (count - 1) * mss;
  if ((count - 1) * stride + prefix_len + layout.headers + last_payload > dst_cap) return -2;

  const uint8_t* ip = frame + layout.l3;
  const uint8_t* tcp = frame + layout.l4;
  uint16_t ip_id = layout.ipv4 ? Get16(ip + 4) : 0;
  uint32_t seq = Get32(tcp + 4);
  uint8_t flags = tcp[13];
  uint64_t pseudo = PseudoHeaderSum(frame, layout);
  size_t tcp_header = layout.headers - layout.l4;

  for (size_t i = 0; i < count; i++) {
    size_t chunk = i + 1 == count ? last_payload : mss;
    uint8_t* out = dst + i * stride;
    memcpy(out, prefix, prefix_len);
    uint8_t* seg = out + prefix_len;
    memcpy(seg, frame, layout.headers);
    memcpy(seg + layout.headers, frame + layout.headers + i * mss, chunk);

    uint8_t* seg_ip = seg + layout.l3;
    uint8_t* seg_tcp = seg + layout.l4;
    if (layout.ipv4) {
      Put16(seg_ip + 2, (uint16_t)(ip_and_tcp + chunk));
      Put16(seg_ip + 4, (uint16_t)(ip_id + i));
      Put16(seg_ip + 10, 0);
      size_t ihl = layout.l4 - layout.l3;
      Put16(seg_ip + 10, (uint16_t)~Fold(Sum(seg_ip, ihl, 0)));
    } else {
      Put16(seg_ip + 4, (uint16_t)(tcp_header + chunk));
    }
    Put32(seg_tcp + 4, seq + (uint32_t)(i * mss));
    uint8_t seg_flags = flags;
    if (i + 1 != count) seg_flags &= (uint8_t)~(kTcpFin | kTcpPsh);
    if (i != 0) seg_flags &= (uint8_t)~kTcpCwr;
    seg_tcp[13] = seg_flags;
    Put16(seg_tcp + 16, 0);
    uint64_t sum = pseudo + (uint64_t)(tcp_header + chunk);
    sum = Sum(seg_tcp, tcp_header + chunk, sum);
    Put16(seg_tcp + 16, (uint16_t)~Fold(sum));
  }
  result->count = count;
  result->stride = stride;
  result->last_length = prefix_len + layout.headers + last_payload;
  return 0;
}

}  // namespace tsvtep
