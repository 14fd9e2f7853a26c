// tsvtep native addon: the thin part of the I/O edge.
//
// It opens the TAP device and the UDP socket, moves frames in batches
// (read/write loops on the TAP, recvmmsg/sendmmsg on the socket) and tells
// JavaScript when a descriptor is readable (uv_poll on the event loop).
// It holds no policy: every buffer is owned by JavaScript, every decision is
// made there. Errors are thrown with the errno name in err.code.

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>

#include "offload.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace {

// struct virtio_net_hdr without the mergeable-buffers field, in front of
// every frame once offloads are on.
constexpr int kVirtioNetHdrLen = 10;

uint8_t kEmptyVnetHdr[kVirtioNetHdrLen] = {0};

// Largest batch one call moves. JavaScript sizes its slabs from this.
constexpr uint32_t kBatchMax = 256;

// Each peer address crosses the boundary as 20 bytes: 16 bytes of IPv6
// address (IPv4 as ::ffff:a.b.c.d), 2 bytes of port in network order, 2 spare.
constexpr size_t kAddrRecord = 20;

// How long a send may wait for room in the socket buffer before the rest of
// the batch is dropped and counted. Waiting gives TCP backpressure; the bound
// keeps the event loop alive when the underlay is stuck.
constexpr int kSendWaitMs = 20;

Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err) {
  const char* code = uv_err_name(-err);
  std::string message = std::string(syscall) + ": " + strerror(err) + " (" + code + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

Napi::Value ThrowErrno(Napi::Env env, const char* syscall, int err) {
  ErrnoError(env, syscall, err).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool IsBuffer(const Napi::Value& v) { return v.IsBuffer() || v.IsTypedArray(); }

// A byte view of a Buffer or Uint8Array argument.
struct Bytes {
  uint8_t* data = nullptr;
  size_t length = 0;
};

Bytes BytesOf(const Napi::Value& v) {
  Napi::TypedArray arr = v.As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = arr.ArrayBuffer();
  Bytes b;
  b.data = static_cast<uint8_t*>(ab.Data()) + arr.ByteOffset();
  b.length = arr.ByteLength();
  return b;
}

uint32_t* U32Of(const Napi::Value& v, size_t* count) {
  Napi::Uint32Array arr = v.As<Napi::Uint32Array>();
  *count = arr.ElementLength();
  return arr.Data();
}

int32_t* I32Of(const Napi::Value& v, size_t* count) {
  Napi::Int32Array arr = v.As<Napi::Int32Array>();
  *count = arr.ElementLength();
  return arr.Data();
}

// ---------------------------------------------------------------- TAP

// tapOpen(name, vnetHdr) -> { fd, name }
// name '' lets the kernel choose (tap%d). The device is not persistent: it
// disappears when the descriptor closes, so a crashed daemon leaves no TAP.
Napi::Value TapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBoolean()) {
    return ThrowType(env, "tapOpen(name: string, vnetHdr: boolean)");
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.size() >= IFNAMSIZ) return ThrowType(env, "interface name too long");

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, "open /dev/net/tun", errno);

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (info[1].As<Napi::Boolean>().Value()) ifr.ifr_flags |= IFF_VNET_HDR;
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "ioctl TUNSETIFF", err);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, fd));
  result.Set("name", Napi::String::New(env, ifr.ifr_name));
  return result;
}

// closeFd(fd)
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "closeFd(fd: number)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (close(fd) < 0 && errno != EINTR) return ThrowErrno(env, "close", errno);
  return env.Undefined();
}

// tapSetOffload(fd, flags) asks the kernel to hand us TCP segments of up to
// 64 KiB (TSO) with partial checksums, each frame behind a 10-byte
// virtio_net_hdr. Throws (err.code) if the kernel refuses; the TAP then still
// works, with the header and no offloads.
Napi::Value TapSetOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    return ThrowType(env, "tapSetOffload(fd, flags)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned int flags = info[1].As<Napi::Number>().Uint32Value();
  int size = kVirtioNetHdrLen;
  if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) return ThrowErrno(env, "ioctl TUNSETVNETHDRSZ", errno);
  if (ioctl(fd, TUNSETOFFLOAD, flags) < 0) return ThrowErrno(env, "ioctl TUNSETOFFLOAD", errno);
  return env.Undefined();
}

// readFrames(fd, slab, slotSize, headroom, maxFrames, lengths) -> count
// Reads up to maxFrames frames, frame i into slab[i*slotSize + headroom ...].
// Returns 0 when nothing is waiting. Throws only if the first read fails:
// a later failure ends the batch and shows again on the next call.
Napi::Value ReadFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsNumber() || !IsBuffer(info[1]) || !info[2].IsNumber() ||
      !info[3].IsNumber() || !info[4].IsNumber() || !info[5].IsTypedArray()) {
    return ThrowType(env, "readFrames(fd, slab, slotSize, headroom, maxFrames, lengths)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Bytes slab = BytesOf(info[1]);
  uint32_t slot = info[2].As<Napi::Number>().Uint32Value();
  uint32_t headroom = info[3].As<Napi::Number>().Uint32Value();
  uint32_t max = info[4].As<Napi::Number>().Uint32Value();
  size_t nlengths;
  uint32_t* lengths = U32Of(info[5], &nlengths);
  if (headroom >= slot || max > nlengths || max > kBatchMax || (size_t)max * slot > slab.length) {
    return ThrowType(env, "readFrames: slab or lengths too small for the batch");
  }
  uint32_t count = 0;
  while (count < max) {
    uint8_t* dst = slab.data + (size_t)count * slot + headroom;
    ssize_t n = read(fd, dst, slot - headroom);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (count == 0) return ThrowErrno(env, "read tap", errno);
      break;
    }
    lengths[count++] = (uint32_t)n;
  }
  return Napi::Number::New(env, count);
}

// writeFrames(fd, slab, offsets, lengths, count, results, vnetHdr) -> frames written
// results[i] is 0 if frame i was written, else its errno. A failed frame is
// skipped, not retried: the caller counts it as a drop. With vnetHdr each
// frame goes behind an all-zeros virtio_net_hdr (a plain, complete frame).
Napi::Value WriteFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsNumber() || !IsBuffer(info[1]) || !info[2].IsTypedArray() ||
      !info[3].IsTypedArray() || !info[4].IsNumber() || !info[5].IsTypedArray()) {
    return ThrowType(env, "writeFrames(fd, slab, offsets, lengths, count, results)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Bytes slab = BytesOf(info[1]);
  size_t noff, nlen, nresults;
  uint32_t* offsets = U32Of(info[2], &noff);
  uint32_t* lengths = U32Of(info[3], &nlen);
  uint32_t count = info[4].As<Napi::Number>().Uint32Value();
  int32_t* results = I32Of(info[5], &nresults);
  if (count > noff || count > nlen || count > nresults) return ThrowType(env, "writeFrames: arrays too small");
  // Argument 6: true (every frame gets an empty virtio_net_hdr in front), or a
  // Uint8Array saying so per frame (1) for frames that do not carry their own.
  bool vnet_all = info.Length() > 6 && info[6].IsBoolean() && info[6].As<Napi::Boolean>().Value();
  const uint8_t* vnet_each = nullptr;
  if (info.Length() > 6 && info[6].IsTypedArray()) {
    Bytes each = BytesOf(info[6]);
    if (count > each.length) return ThrowType(env, "writeFrames: prepend flags too small");
    vnet_each = each.data;
  }
  uint32_t written = 0;
  for (uint32_t i = 0; i < count; i++) {
    if ((size_t)offsets[i] + lengths[i] > slab.length) {
      results[i] = EINVAL;
      continue;
    }
    struct iovec iov[2] = {{kEmptyVnetHdr, (size_t)kVirtioNetHdrLen}, {slab.data + offsets[i], lengths[i]}};
    for (;;) {
      bool vnet_hdr = vnet_all || (vnet_each != nullptr && vnet_each[i] != 0);
      ssize_t n = vnet_hdr ? writev(fd, iov, 2) : write(fd, slab.data + offsets[i], lengths[i]);
      if (n >= 0) {
        results[i] = 0;
        written++;
        break;
      }
      if (errno == EINTR) continue;
      results[i] = errno;
      break;
    }
  }
  return Napi::Number::New(env, written);
}

// ---------------------------------------------------------------- UDP

void RecordToSockaddr(const uint8_t* rec, int family, struct sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof *ss);
  uint16_t port_be;
  memcpy(&port_be, rec + 16, 2);
  if (family == AF_INET) {
    struct sockaddr_in* sin = reinterpret_cast<struct sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = port_be;
    memcpy(&sin->sin_addr, rec + 12, 4);
    *len = sizeof *sin;
  } else {
    struct sockaddr_in6* sin6 = reinterpret_cast<struct sockaddr_in6*>(ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = port_be;
    memcpy(&sin6->sin6_addr, rec, 16);
    *len = sizeof *sin6;
  }
}

void SockaddrToRecord(const struct sockaddr_storage* ss, uint8_t* rec) {
  memset(rec, 0, kAddrRecord);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in* sin = reinterpret_cast<const struct sockaddr_in*>(ss);
    rec[10] = 0xff;
    rec[11] = 0xff;
    memcpy(rec + 12, &sin->sin_addr, 4);
    memcpy(rec + 16, &sin->sin_port, 2);
  } else {
    const struct sockaddr_in6* sin6 = reinterpret_cast<const struct sockaddr_in6*>(ss);
    memcpy(rec, &sin6->sin6_addr, 16);
    memcpy(rec + 16, &sin6->sin6_port, 2);
  }
}

int SocketFamily(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) < 0) return -1;
  return ss.ss_family;
}

void SetBufferSize(int fd, int opt, int force_opt, int bytes) {
  if (bytes <= 0) return;
  // The FORCE variant passes rmem_max/wmem_max when we have CAP_NET_ADMIN.
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) < 0) {
    setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
  }
}

// udpOpen(record, v6only, rcvbuf, sndbuf, dontFragment) -> fd
// The record's address picks the family: an IPv4-mapped address gives an
// AF_INET socket, anything else AF_INET6 (v6only=false also serves IPv4).
// dontFragment=false clears DF on IPv4 so routers may fragment, as the
// kernel's vxlan does by default; true sets DF (IPv6 never fragments en route).
Napi::Value UdpOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !IsBuffer(info[0]) || !info[1].IsBoolean() || !info[2].IsNumber() ||
      !info[3].IsNumber() || !info[4].IsBoolean()) {
    return ThrowType(env, "udpOpen(record, v6only, rcvbuf, sndbuf, dontFragment)");
  }
  Bytes rec = BytesOf(info[0]);
  if (rec.length < kAddrRecord) return ThrowType(env, "udpOpen: address record must be 20 bytes");
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  int family = memcmp(rec.data, kMapped, 12) == 0 ? AF_INET : AF_INET6;

  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket", errno);
  if (family == AF_INET6) {
    int v6only = info[1].As<Napi::Boolean>().Value() ? 1 : 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
      int err = errno;
      close(fd);
      return ThrowErrno(env, "setsockopt IPV6_V6ONLY", err);
    }
  }
  // IP_MTU_DISCOVER also applies to IPv4-mapped traffic on a dual-stack socket.
  int pmtu = info[4].As<Napi::Boolean>().Value() ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT;
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0 && family == AF_INET) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "setsockopt IP_MTU_DISCOVER", err);
  }
  SetBufferSize(fd, SO_RCVBUF, SO_RCVBUFFORCE, info[2].As<Napi::Number>().Int32Value());
  SetBufferSize(fd, SO_SNDBUF, SO_SNDBUFFORCE, info[3].As<Napi::Number>().Int32Value());

  struct sockaddr_storage ss;
  socklen_t len;
  RecordToSockaddr(rec.data, family, &ss, &len);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "bind", err);
  }
  return Napi::Number::New(env, fd);
}

// udpEnableGro(fd) asks the kernel to hand over runs of datagrams from one
// sender as one buffer (UDP_GRO); recvBatch then reports their size.
Napi::Value UdpEnableGro(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "udpEnableGro(fd)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int on = 1;
  if (setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on) < 0) return ThrowErrno(env, "setsockopt UDP_GRO", errno);
  return env.Undefined();
}

// udpLocalRecord(fd, record) fills record with the bound address and port.
Napi::Value UdpLocalRecord(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !IsBuffer(info[1])) {
    return ThrowType(env, "udpLocalRecord(fd, record)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Bytes rec = BytesOf(info[1]);
  if (rec.length < kAddrRecord) return ThrowType(env, "udpLocalRecord: record must be 20 bytes");
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) < 0) {
    return ThrowErrno(env, "getsockname", errno);
  }
  SockaddrToRecord(&ss, rec.data);
  return env.Undefined();
}

constexpr size_t kControlSpace = 64;

struct MsgArrays {
  struct mmsghdr msgs[kBatchMax];
  struct iovec iovs[kBatchMax];
  struct sockaddr_storage names[kBatchMax];
  alignas(struct cmsghdr) char controls[kBatchMax][kControlSpace];
};
// All calls run on the event loop thread, so one set of arrays serves them.
MsgArrays g_msg;

// recvBatch(fd, slab, slotSize, headroom, max, lengths, records) -> count
// Datagram i lands at slab[i*slotSize + headroom]; its sender in records[i*20].
// A datagram larger than the slot is reported with length slotSize-headroom+1
// so the caller can count it as oversize.
Napi::Value RecvBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsNumber() || !IsBuffer(info[1]) || !info[2].IsNumber() ||
      !info[3].IsNumber() || !info[4].IsNumber() || !info[5].IsTypedArray() || !IsBuffer(info[6])) {
    return ThrowType(env, "recvBatch(fd, slab, slotSize, headroom, max, lengths, records)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Bytes slab = BytesOf(info[1]);
  uint32_t slot = info[2].As<Napi::Number>().Uint32Value();
  uint32_t headroom = info[3].As<Napi::Number>().Uint32Value();
  uint32_t max = info[4].As<Napi::Number>().Uint32Value();
  size_t nlengths;
  uint32_t* lengths = U32Of(info[5], &nlengths);
  Bytes records = BytesOf(info[6]);
  if (headroom >= slot || max > kBatchMax || max > nlengths || (size_t)max * slot > slab.length ||
      (size_t)max * kAddrRecord > records.length) {
    return ThrowType(env, "recvBatch: slab, lengths or records too small for the batch");
  }
  // Argument 7 (optional): with UDP_GRO on, segmentSizes[i] > 0 says datagram i
  // is a run of datagrams of that size (the last may be shorter) from one sender.
  uint32_t* segment_sizes = nullptr;
  if (info.Length() > 7 && info[7].IsTypedArray()) {
    size_t nseg;
    segment_sizes = U32Of(info[7], &nseg);
    if (max > nseg) return ThrowType(env, "recvBatch: segmentSizes too small for the batch");
  }
  for (uint32_t i = 0; i < max; i++) {
    g_msg.iovs[i].iov_base = slab.data + (size_t)i * slot + headroom;
    g_msg.iovs[i].iov_len = slot - headroom;
    struct msghdr* h = &g_msg.msgs[i].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = &g_msg.names[i];
    h->msg_namelen = sizeof g_msg.names[i];
    h->msg_iov = &g_msg.iovs[i];
    h->msg_iovlen = 1;
    if (segment_sizes != nullptr) {
      h->msg_control = g_msg.controls[i];
      h->msg_controllen = kControlSpace;
    }
  }
  int n;
  do {
    n = recvmmsg(fd, g_msg.msgs, max, MSG_DONTWAIT, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, 0);
    return ThrowErrno(env, "recvmmsg", errno);
  }
  for (int i = 0; i < n; i++) {
    uint32_t len = g_msg.msgs[i].msg_len;
    if (g_msg.msgs[i].msg_hdr.msg_flags & MSG_TRUNC) len = slot - headroom + 1;
    lengths[i] = len;
    SockaddrToRecord(&g_msg.names[i], records.data + (size_t)i * kAddrRecord);
    if (segment_sizes != nullptr) {
      segment_sizes[i] = 0;
      struct msghdr* h = &g_msg.msgs[i].msg_hdr;
      if (h->msg_flags & MSG_TRUNC) continue;
      for (struct cmsghdr* cm = CMSG_FIRSTHDR(h); cm != nullptr; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO) {
          int size;
          memcpy(&size, CMSG_DATA(cm), sizeof size);
          if (size > 0) segment_sizes[i] = (uint32_t)size;
        }
      }
    }
  }
  return Napi::Number::New(env, n);
}

bool WaitWritable(int fd) {
  struct pollfd p = {fd, POLLOUT, 0};
  int r;
  do {
    r = poll(&p, 1, kSendWaitMs);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

// sendBatch(fd, slab, offsets, lengths, records, count, results) -> datagrams sent
// Datagram i is slab[offsets[i] .. +lengths[i]] to records[i*20]. Several
// entries may point at the same bytes (flooding one frame to every peer).
// results[i] is 0 if datagram i was sent, else its errno.
// segmentSizes (optional, argument 7): if segmentSizes[i] > 0, datagram i is a run of
// datagrams of that size (the last may be shorter) that the kernel splits
// (UDP GSO, UDP_SEGMENT): one system call for a whole TCP segment train.
// dontFragment (optional Uint8Array, argument 9): the outer IPv4 DF bit per
// datagram. Runs of equal value go out in one sendmmsg each, IP_MTU_DISCOVER
// set before the run: IP_PMTUDISC_DO (DF set; the kernel's path MTU applies, a
// larger datagram fails with EMSGSIZE) or IP_PMTUDISC_DONT (DF clear). The
// kernel reads the mode as it builds each datagram, so the choice is exact per
// datagram. Without it the socket keeps the mode it was opened with.
Napi::Value SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsNumber() || !IsBuffer(info[1]) || !info[2].IsTypedArray() ||
      !info[3].IsTypedArray() || !IsBuffer(info[4]) || !info[5].IsNumber() || !info[6].IsTypedArray()) {
    return ThrowType(env, "sendBatch(fd, slab, offsets, lengths, records, count, results)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Bytes slab = BytesOf(info[1]);
  size_t noff, nlen, nresults;
  uint32_t* offsets = U32Of(info[2], &noff);
  uint32_t* lengths = U32Of(info[3], &nlen);
  Bytes records = BytesOf(info[4]);
  uint32_t count = info[5].As<Napi::Number>().Uint32Value();
  int32_t* results = I32Of(info[6], &nresults);
  if (count > kBatchMax || count > noff || count > nlen || (size_t)count * kAddrRecord > records.length ||
      count > nresults) {
    return ThrowType(env, "sendBatch: arrays too small for the batch");
  }
  // Argument 7: GSO sizes (Uint32Array); argument 8: per-datagram DF (Uint8Array).
  uint32_t* segment_sizes = nullptr;
  if (info.Length() > 7 && info[7].IsTypedArray() && info[7].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array) {
    size_t nseg;
    segment_sizes = U32Of(info[7], &nseg);
    if (count > nseg) return ThrowType(env, "sendBatch: segmentSizes too small for the batch");
  }
  const uint8_t* dont_fragment = nullptr;
  if (info.Length() > 8 && IsBuffer(info[8])) {
    Bytes df = BytesOf(info[8]);
    if (count > df.length) return ThrowType(env, "sendBatch: dontFragment too small for the batch");
    dont_fragment = df.data;
  }
  int family = SocketFamily(fd);
  if (family < 0) return ThrowErrno(env, "getsockname", errno);

  // entry[k] is the batch index of message k, so results land in place.
  static uint32_t entry[kBatchMax];
  uint32_t ready = 0;
  for (uint32_t i = 0; i < count; i++) {
    results[i] = 0;
    if ((size_t)offsets[i] + lengths[i] > slab.length) {
      results[i] = EINVAL;
      continue;
    }
    entry[ready] = i;
    g_msg.iovs[ready].iov_base = slab.data + offsets[i];
    g_msg.iovs[ready].iov_len = lengths[i];
    struct msghdr* h = &g_msg.msgs[ready].msg_hdr;
    memset(h, 0, sizeof *h);
    socklen_t len;
    RecordToSockaddr(records.data + (size_t)i * kAddrRecord, family, &g_msg.names[ready], &len);
    h->msg_name = &g_msg.names[ready];
    h->msg_namelen = len;
    h->msg_iov = &g_msg.iovs[ready];
    h->msg_iovlen = 1;
    if (segment_sizes != nullptr && segment_sizes[i] > 0 && segment_sizes[i] < lengths[i]) {
      char* control = g_msg.controls[ready];
      memset(control, 0, kControlSpace);
      h->msg_control = control;
      h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr* cm = CMSG_FIRSTHDR(h);
      cm->cmsg_level = IPPROTO_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t size = (uint16_t)segment_sizes[i];
      memcpy(CMSG_DATA(cm), &size, sizeof size);
    }
    ready++;
  }

  uint32_t sent = 0;
  uint32_t next = 0;
  int pmtu_mode = -1;
  while (next < ready) {
    uint32_t end = ready;
    if (dont_fragment != nullptr) {
      uint8_t want = dont_fragment[entry[next]];
      end = next + 1;
      while (end < ready && dont_fragment[entry[end]] == want) end++;
      int mode = want ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT;
      if (mode != pmtu_mode && setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof mode) == 0) pmtu_mode = mode;
    }
    int n = sendmmsg(fd, g_msg.msgs + next, end - next, 0);
    if (n > 0) {
      sent += n;
      next += n;
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if ((err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) && WaitWritable(fd)) continue;
    // This datagram cannot go (no route, too big, refused, buffer stuck):
    // count it and carry on with the rest of the batch.
    results[entry[next]] = err;
    next++;
  }
  return Napi::Number::New(env, sent);
}

// ---------------------------------------------------------------- offloads

// finishChecksum(buf, frameOffset, frameLength, csumStart, csumOffset) -> ok
Napi::Value FinishChecksumJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !IsBuffer(info[0]) || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() ||
      !info[4].IsNumber()) {
    return ThrowType(env, "finishChecksum(buf, frameOffset, frameLength, csumStart, csumOffset)");
  }
  Bytes buf = BytesOf(info[0]);
  size_t offset = info[1].As<Napi::Number>().Uint32Value();
  size_t length = info[2].As<Napi::Number>().Uint32Value();
  if (offset + length > buf.length) return ThrowType(env, "finishChecksum: frame outside the buffer");
  bool ok = tsvtep::FinishChecksum(buf.data + offset, length, info[3].As<Napi::Number>().Uint32Value(),
                                   info[4].As<Napi::Number>().Uint32Value());
  return Napi::Boolean::New(env, ok);
}

// tcpChecksumValid(buf, frameOffset, frameLength) -> boolean
Napi::Value TcpChecksumValidJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !IsBuffer(info[0]) || !info[1].IsNumber() || !info[2].IsNumber()) {
    return ThrowType(env, "tcpChecksumValid(buf, frameOffset, frameLength)");
  }
  Bytes buf = BytesOf(info[0]);
  size_t offset = info[1].As<Napi::Number>().Uint32Value();
  size_t length = info[2].As<Napi::Number>().Uint32Value();
  if (offset + length > buf.length) return ThrowType(env, "tcpChecksumValid: frame outside the buffer");
  return Napi::Boolean::New(env, tsvtep::TcpChecksumValid(buf.data + offset, length));
}

// segmentTcp(src, frameOffset, frameLength, gsoSize, maxL3, prefix, dst, dstOffset, dstCapacity, out) -> status
// out = [count, stride, lastLength]; status 0, -1 (not a TCP frame), -2 (dst too small).
Napi::Value SegmentTcpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 10 || !IsBuffer(info[0]) || !IsBuffer(info[5]) || !IsBuffer(info[6]) || !info[9].IsTypedArray()) {
    return ThrowType(env, "segmentTcp(src, frameOffset, frameLength, gsoSize, maxL3, prefix, dst, dstOffset, dstCapacity, out)");
  }
  for (int i : {1, 2, 3, 4, 7, 8}) {
    if (!info[i].IsNumber()) return ThrowType(env, "segmentTcp: offsets and sizes must be numbers");
  }
  Bytes src = BytesOf(info[0]);
  size_t offset = info[1].As<Napi::Number>().Uint32Value();
  size_t length = info[2].As<Napi::Number>().Uint32Value();
  Bytes prefix = BytesOf(info[5]);
  Bytes dst = BytesOf(info[6]);
  size_t dst_offset = info[7].As<Napi::Number>().Uint32Value();
  size_t dst_cap = info[8].As<Napi::Number>().Uint32Value();
  size_t nout;
  uint32_t* out = U32Of(info[9], &nout);
  if (offset + length > src.length || dst_offset + dst_cap > dst.length || nout < 3) {
    return ThrowType(env, "segmentTcp: region outside its buffer");
  }
  tsvtep::SegmentResult result;
  int status = tsvtep::SegmentTcp(src.data + offset, length, info[3].As<Napi::Number>().Uint32Value(),
                                  info[4].As<Napi::Number>().Uint32Value(), prefix.data, prefix.length,
                                  dst.data + dst_offset, dst_cap, &result);
  if (status == 0) {
    out[0] = (uint32_t)result.count;
    out[1] = (uint32_t)result.stride;
    out[2] = (uint32_t)result.last_length;
  }
  return Napi::Number::New(env, status);
}

// pathMtu(record) -> the kernel's path MTU towards the record's address.
// A UDP socket connected to the address (connect sends nothing) holds the
// route the kernel would use, with what ICMP "too big" taught it; IP_MTU or
// IPV6_MTU reads that route's MTU.
Napi::Value PathMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !IsBuffer(info[0])) return ThrowType(env, "pathMtu(record)");
  Bytes rec = BytesOf(info[0]);
  if (rec.length < kAddrRecord) return ThrowType(env, "pathMtu: address record must be 20 bytes");
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  int family = memcmp(rec.data, kMapped, 12) == 0 ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket", errno);
  struct sockaddr_storage ss;
  socklen_t len;
  RecordToSockaddr(rec.data, family, &ss, &len);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&ss), len) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "connect", err);
  }
  int mtu = 0;
  socklen_t mtu_len = sizeof mtu;
  int rc = family == AF_INET ? getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &mtu_len)
                             : getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &mtu_len);
  int err = errno;
  close(fd);
  if (rc < 0) return ThrowErrno(env, family == AF_INET ? "getsockopt IP_MTU" : "getsockopt IPV6_MTU", err);
  return Napi::Number::New(env, mtu);
}

// ---------------------------------------------------------------- Poller

// Calls a JavaScript function whenever a descriptor is readable. One wake-up
// per batch, not per frame: the callback drains the descriptor itself.
class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("start", &Poller::Start), InstanceMethod("stop", &Poller::Stop),
                        InstanceMethod("close", &Poller::Close)});
  }

  Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "new Poller(fd: number, onReadable: (errno: number) => void)")
          .ThrowAsJavaScriptException();
      return;
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = new Napi::AsyncContext(env, "tsvtep:poll");
    handle_ = new uv_poll_t;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    int rc = uv_poll_init(loop, handle_, info[0].As<Napi::Number>().Int32Value());
    if (rc < 0) {
      delete handle_;
      handle_ = nullptr;
      ErrnoError(env, "uv_poll_init", -rc).ThrowAsJavaScriptException();
      return;
    }
    handle_->data = this;
  }

  ~Poller() override {
    CloseHandle();
    delete context_;
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!handle_) return info.Env().Undefined();
    int rc = uv_poll_start(handle_, UV_READABLE, OnPoll);
    if (rc < 0) return ThrowErrno(info.Env(), "uv_poll_start", -rc);
    // Keep the JS object alive while the handle can call back into it.
    if (!started_) Ref();
    started_ = true;
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) uv_poll_stop(handle_);
    if (started_) Unref();
    started_ = false;
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop(info);
    CloseHandle();
    return info.Env().Undefined();
  }

  void CloseHandle() {
    if (!handle_) return;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    Poller* self = static_cast<Poller*>(handle->data);
    Napi::Env env = self->callback_.Env();
    Napi::HandleScope scope(env);
    Napi::Value err = Napi::Number::New(env, status < 0 ? -status : 0);
    self->callback_.MakeCallback(env.Global(), {err}, *self->context_);
  }

  Napi::FunctionReference callback_;
  Napi::AsyncContext* context_ = nullptr;
  uv_poll_t* handle_ = nullptr;
  bool started_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("BATCH_MAX", Napi::Number::New(env, kBatchMax));
  exports.Set("ADDR_RECORD", Napi::Number::New(env, kAddrRecord));
  exports.Set("tapOpen", Napi::Function::New(env, TapOpen));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("tapSetOffload", Napi::Function::New(env, TapSetOffload));
  exports.Set("finishChecksum", Napi::Function::New(env, FinishChecksumJs));
  exports.Set("segmentTcp", Napi::Function::New(env, SegmentTcpJs));
  exports.Set("tcpChecksumValid", Napi::Function::New(env, TcpChecksumValidJs));
  exports.Set("TUN_F_CSUM", Napi::Number::New(env, TUN_F_CSUM));
  exports.Set("TUN_F_TSO4", Napi::Number::New(env, TUN_F_TSO4));
  exports.Set("TUN_F_TSO6", Napi::Number::New(env, TUN_F_TSO6));
  exports.Set("TUN_F_TSO_ECN", Napi::Number::New(env, TUN_F_TSO_ECN));
  exports.Set("readFrames", Napi::Function::New(env, ReadFrames));
  exports.Set("writeFrames", Napi::Function::New(env, WriteFrames));
  exports.Set("udpOpen", Napi::Function::New(env, UdpOpen));
  exports.Set("udpEnableGro", Napi::Function::New(env, UdpEnableGro));
  exports.Set("udpLocalRecord", Napi::Function::New(env, UdpLocalRecord));
  exports.Set("recvBatch", Napi::Function::New(env, RecvBatch));
  exports.Set("sendBatch", Napi::Function::New(env, SendBatch));
  exports.Set("pathMtu", Napi::Function::New(env, PathMtu));
  exports.Set("Poller", Poller::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(tsvtep_native, Init)
