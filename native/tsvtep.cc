// tsvtep native addon: the thin part of the I/O edge.
//
// System calls and byte loops only: open the TAP device and the UDP socket,
// move frames in batches (read/write loops on the TAP, recvmmsg/sendmmsg on
// the socket), split and checksum TCP segments (offload.cc), and tell
// JavaScript when a descriptor is readable or writable (uv_poll on the event
// loop). Nothing here waits, retries or chooses: a send that would block
// returns EAGAIN, and TypeScript (src/io/udp.ts) decides what happens next.
// Every buffer is owned by JavaScript. Errors are thrown with the errno name
// in err.code; a wrong argument is a TypeError (see kSignatures).

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <initializer_list>
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

// Largest batch one call moves. JavaScript sizes its batches from this.
constexpr uint32_t kBatchMax = 256;

// Each peer address crosses the boundary as 20 bytes: 16 bytes of IPv6
// address (IPv4 as ::ffff:a.b.c.d), 2 bytes of port in network order, 2 spare.
constexpr size_t kAddrRecord = 20;

// The first 12 bytes of an IPv4-mapped IPv6 address.
constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int RecordFamily(const uint8_t* rec) { return memcmp(rec, kMapped, sizeof kMapped) == 0 ? AF_INET : AF_INET6; }

// ---------------------------------------------------------------- arguments

// What an argument must be. Typed arrays are checked for their element type
// too, so a Uint32Array view is never taken of, say, a Uint8Array.
enum class Arg { kNumber, kBoolean, kString, kFunction, kBytes, kU32Array, kI32Array, kOptU32Array, kBooleanOrBytes };

struct Signature {
  const char* usage;
  std::initializer_list<Arg> args;
};

// Every function's arguments, in one table.
namespace sig {
using A = Arg;
const Signature kTapOpen = {"tapOpen(name: string, vnetHdr: boolean)", {A::kString, A::kBoolean}};
const Signature kCloseFd = {"closeFd(fd: number)", {A::kNumber}};
const Signature kTapSetOffload = {"tapSetOffload(fd: number, flags: number)", {A::kNumber, A::kNumber}};
const Signature kReadFrames = {
    "readFrames(fd: number, slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array)",
    {A::kNumber, A::kBytes, A::kNumber, A::kNumber, A::kNumber, A::kU32Array}};
const Signature kWriteFrames = {
    "writeFrames(fd: number, slab: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, "
    "results: Int32Array, vnetHdr: boolean | Uint8Array)",
    {A::kNumber, A::kBytes, A::kU32Array, A::kU32Array, A::kNumber, A::kI32Array, A::kBooleanOrBytes}};
const Signature kUdpOpen = {"udpOpen(record: Buffer, v6only: boolean, rcvbuf: number, sndbuf: number, dontFragment: boolean)",
                            {A::kBytes, A::kBoolean, A::kNumber, A::kNumber, A::kBoolean}};
const Signature kUdpSetDontFragment = {"udpSetDontFragment(fd: number, on: boolean)", {A::kNumber, A::kBoolean}};
const Signature kUdpEnableGro = {"udpEnableGro(fd: number)", {A::kNumber}};
const Signature kUdpLocalRecord = {"udpLocalRecord(fd: number, record: Buffer)", {A::kNumber, A::kBytes}};
const Signature kRecvBatch = {
    "recvBatch(fd: number, slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array, "
    "records: Buffer, segmentSizes: Uint32Array | null)",
    {A::kNumber, A::kBytes, A::kNumber, A::kNumber, A::kNumber, A::kU32Array, A::kBytes, A::kOptU32Array}};
const Signature kSendBatch = {
    "sendBatch(fd: number, family: 4 | 6, slab: Buffer, offsets: Uint32Array, lengths: Uint32Array, records: Buffer, "
    "results: Int32Array, segmentSizes: Uint32Array | null, first: number, end: number)",
    {A::kNumber, A::kNumber, A::kBytes, A::kU32Array, A::kU32Array, A::kBytes, A::kI32Array, A::kOptU32Array, A::kNumber,
     A::kNumber}};
const Signature kFinishChecksum = {
    "finishChecksum(buf: Buffer, frameOffset: number, frameLength: number, csumStart: number, csumOffset: number)",
    {A::kBytes, A::kNumber, A::kNumber, A::kNumber, A::kNumber}};
const Signature kTcpChecksumValid = {"tcpChecksumValid(buf: Buffer, frameOffset: number, frameLength: number)",
                                     {A::kBytes, A::kNumber, A::kNumber}};
const Signature kSegmentTcp = {
    "segmentTcp(src: Buffer, frameOffset: number, frameLength: number, gsoSize: number, maxL3: number, prefix: Buffer, "
    "dst: Buffer, dstOffset: number, dstCapacity: number, out: Uint32Array)",
    {A::kBytes, A::kNumber, A::kNumber, A::kNumber, A::kNumber, A::kBytes, A::kBytes, A::kNumber, A::kNumber,
     A::kU32Array}};
const Signature kPathMtu = {"pathMtu(record: Buffer)", {A::kBytes}};
const Signature kPoller = {"new Poller(fd: number, onEvent: (errno: number, events: number) => void)",
                           {A::kNumber, A::kFunction}};
const Signature kPollerStart = {"poller.start(events: number)", {A::kNumber}};
}  // namespace sig

bool IsTypedArrayOf(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

bool Matches(const Napi::Value& v, Arg arg) {
  switch (arg) {
    case Arg::kNumber:
      return v.IsNumber();
    case Arg::kBoolean:
      return v.IsBoolean();
    case Arg::kString:
      return v.IsString();
    case Arg::kFunction:
      return v.IsFunction();
    case Arg::kBytes:  // a Buffer is a Uint8Array
      return IsTypedArrayOf(v, napi_uint8_array);
    case Arg::kU32Array:
      return IsTypedArrayOf(v, napi_uint32_array);
    case Arg::kI32Array:
      return IsTypedArrayOf(v, napi_int32_array);
    case Arg::kOptU32Array:
      return v.IsNull() || v.IsUndefined() || IsTypedArrayOf(v, napi_uint32_array);
    case Arg::kBooleanOrBytes:
      return v.IsBoolean() || IsTypedArrayOf(v, napi_uint8_array);
  }
  return false;
}

// Throws a TypeError naming the first argument that does not match, and returns false.
bool CheckArgs(const Napi::CallbackInfo& info, const Signature& s) {
  size_t i = 0;
  for (Arg arg : s.args) {
    Napi::Value v = i < info.Length() ? info[i] : info.Env().Undefined();
    if (!Matches(v, arg)) {
      std::string message = std::string(s.usage) + ": argument " + std::to_string(i + 1) + " has the wrong type";
      Napi::TypeError::New(info.Env(), message).ThrowAsJavaScriptException();
      return false;
    }
    i++;
  }
  return true;
}

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

// Views of arguments CheckArgs has accepted.
template <typename T>
struct View {
  T* data = nullptr;
  size_t length = 0;  // in elements
};

template <typename T>
View<T> ViewOf(const Napi::Value& v) {
  View<T> view;
  if (!v.IsTypedArray()) return view;  // an optional array left out
  Napi::TypedArray arr = v.As<Napi::TypedArray>();
  view.data = reinterpret_cast<T*>(static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset());
  view.length = arr.ElementLength();
  return view;
}

int32_t Int(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value(); }
uint32_t Uint(const Napi::Value& v) { return v.As<Napi::Number>().Uint32Value(); }
bool Bool(const Napi::Value& v) { return v.As<Napi::Boolean>().Value(); }

// The receive-side batch both readFrames and recvBatch take as arguments 2-6:
// slot i is slab[i*slotSize + headroom ..], its length in lengths[i].
struct SlabArgs {
  View<uint8_t> slab;
  uint32_t slot = 0;
  uint32_t headroom = 0;
  uint32_t max = 0;
  View<uint32_t> lengths;
};

// False (a TypeError thrown) if the batch does not fit its arrays.
bool SlabOf(const Napi::CallbackInfo& info, const char* name, SlabArgs* out) {
  out->slab = ViewOf<uint8_t>(info[1]);
  out->slot = Uint(info[2]);
  out->headroom = Uint(info[3]);
  out->max = Uint(info[4]);
  out->lengths = ViewOf<uint32_t>(info[5]);
  if (out->headroom >= out->slot || out->max > kBatchMax || out->max > out->lengths.length ||
      (size_t)out->max * out->slot > out->slab.length) {
    ThrowType(info.Env(), (std::string(name) + ": slab or lengths too small for the batch").c_str());
    return false;
  }
  return true;
}

// A frame inside a buffer, arguments 1-3 of finishChecksum and tcpChecksumValid.
bool FrameOf(const Napi::CallbackInfo& info, const char* name, uint8_t** frame, size_t* length) {
  View<uint8_t> buf = ViewOf<uint8_t>(info[0]);
  size_t offset = Uint(info[1]);
  *length = Uint(info[2]);
  if (offset + *length > buf.length) {
    ThrowType(info.Env(), (std::string(name) + ": frame outside the buffer").c_str());
    return false;
  }
  *frame = buf.data + offset;
  return true;
}

// ---------------------------------------------------------------- TAP

// tapOpen(name, vnetHdr) -> { fd, name }
// name '' lets the kernel choose (tap%d). The device is not persistent: it
// disappears when the descriptor closes, so a crashed daemon leaves no TAP.
Napi::Value TapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kTapOpen)) return env.Undefined();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.size() >= IFNAMSIZ) return ThrowType(env, "interface name too long");

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, "open /dev/net/tun", errno);

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (Bool(info[1])) ifr.ifr_flags |= IFF_VNET_HDR;
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
  if (!CheckArgs(info, sig::kCloseFd)) return env.Undefined();
  if (close(Int(info[0])) < 0 && errno != EINTR) return ThrowErrno(env, "close", errno);
  return env.Undefined();
}

// tapSetOffload(fd, flags) asks the kernel to hand us TCP segments of up to
// 64 KiB (TSO) with partial checksums, each frame behind a 10-byte
// virtio_net_hdr. Throws (err.code) if the kernel refuses; the TAP then still
// works, with the header and no offloads.
Napi::Value TapSetOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kTapSetOffload)) return env.Undefined();
  int fd = Int(info[0]);
  unsigned int flags = Uint(info[1]);
  int size = kVirtioNetHdrLen;
  if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) return ThrowErrno(env, "ioctl TUNSETVNETHDRSZ", errno);
  if (ioctl(fd, TUNSETOFFLOAD, flags) < 0) return ThrowErrno(env, "ioctl TUNSETOFFLOAD", errno);
  return env.Undefined();
}

// readFrames(fd, slab, slotSize, headroom, max, lengths) -> count
// Reads up to max frames, frame i into slab[i*slotSize + headroom ...].
// Returns 0 when nothing is waiting. Throws only if the first read fails:
// a later failure ends the batch and shows again on the next call.
Napi::Value ReadFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kReadFrames)) return env.Undefined();
  int fd = Int(info[0]);
  SlabArgs b;
  if (!SlabOf(info, "readFrames", &b)) return env.Undefined();
  uint32_t count = 0;
  while (count < b.max) {
    uint8_t* dst = b.slab.data + (size_t)count * b.slot + b.headroom;
    ssize_t n = read(fd, dst, b.slot - b.headroom);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (count == 0) return ThrowErrno(env, "read tap", errno);
      break;
    }
    b.lengths.data[count++] = (uint32_t)n;
  }
  return Napi::Number::New(env, count);
}

// writeFrames(fd, slab, offsets, lengths, count, results, vnetHdr) -> frames written
// results[i] is 0 if frame i was written, else its errno. A failed frame is
// skipped, not retried: the caller counts it as a drop. vnetHdr: true puts
// every frame behind an all-zeros virtio_net_hdr (a plain, complete frame),
// false none; a Uint8Array says it per frame (1: put one in front).
Napi::Value WriteFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kWriteFrames)) return env.Undefined();
  int fd = Int(info[0]);
  View<uint8_t> slab = ViewOf<uint8_t>(info[1]);
  View<uint32_t> offsets = ViewOf<uint32_t>(info[2]);
  View<uint32_t> lengths = ViewOf<uint32_t>(info[3]);
  uint32_t count = Uint(info[4]);
  View<int32_t> results = ViewOf<int32_t>(info[5]);
  if (count > offsets.length || count > lengths.length || count > results.length) {
    return ThrowType(env, "writeFrames: arrays too small");
  }
  bool vnet_all = info[6].IsBoolean() && Bool(info[6]);
  View<uint8_t> vnet_each = ViewOf<uint8_t>(info[6]);
  if (vnet_each.data != nullptr && count > vnet_each.length) return ThrowType(env, "writeFrames: vnetHdr flags too small");
  uint32_t written = 0;
  for (uint32_t i = 0; i < count; i++) {
    if ((size_t)offsets.data[i] + lengths.data[i] > slab.length) {
      results.data[i] = EINVAL;
      continue;
    }
    uint8_t* frame = slab.data + offsets.data[i];
    struct iovec iov[2] = {{kEmptyVnetHdr, (size_t)kVirtioNetHdrLen}, {frame, lengths.data[i]}};
    bool vnet_hdr = vnet_all || (vnet_each.data != nullptr && vnet_each.data[i] != 0);
    for (;;) {
      ssize_t n = vnet_hdr ? writev(fd, iov, 2) : write(fd, frame, lengths.data[i]);
      if (n >= 0) {
        results.data[i] = 0;
        written++;
        break;
      }
      if (errno == EINTR) continue;
      results.data[i] = errno;
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
    memcpy(rec, kMapped, sizeof kMapped);
    memcpy(rec + 12, &sin->sin_addr, 4);
    memcpy(rec + 16, &sin->sin_port, 2);
  } else {
    const struct sockaddr_in6* sin6 = reinterpret_cast<const struct sockaddr_in6*>(ss);
    memcpy(rec, &sin6->sin6_addr, 16);
    memcpy(rec + 16, &sin6->sin6_port, 2);
  }
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
  if (!CheckArgs(info, sig::kUdpOpen)) return env.Undefined();
  View<uint8_t> rec = ViewOf<uint8_t>(info[0]);
  if (rec.length < kAddrRecord) return ThrowType(env, "udpOpen: address record must be 20 bytes");
  int family = RecordFamily(rec.data);

  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket", errno);
  if (family == AF_INET6) {
    int v6only = Bool(info[1]) ? 1 : 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
      int err = errno;
      close(fd);
      return ThrowErrno(env, "setsockopt IPV6_V6ONLY", err);
    }
  }
  // IP_MTU_DISCOVER also applies to IPv4-mapped traffic on a dual-stack socket.
  int pmtu = Bool(info[4]) ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT;
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0 && family == AF_INET) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "setsockopt IP_MTU_DISCOVER", err);
  }
  SetBufferSize(fd, SO_RCVBUF, SO_RCVBUFFORCE, Int(info[2]));
  SetBufferSize(fd, SO_SNDBUF, SO_SNDBUFFORCE, Int(info[3]));

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

// udpSetDontFragment(fd, on) sets the outer IPv4 DF mode for the datagrams
// sent from now on: IP_PMTUDISC_DO (DF set; the kernel's path MTU applies, a
// larger datagram fails with EMSGSIZE) or IP_PMTUDISC_DONT (DF clear). The
// kernel reads the mode as it builds each datagram.
Napi::Value UdpSetDontFragment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kUdpSetDontFragment)) return env.Undefined();
  int mode = Bool(info[1]) ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT;
  if (setsockopt(Int(info[0]), IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof mode) < 0) {
    return ThrowErrno(env, "setsockopt IP_MTU_DISCOVER", errno);
  }
  return env.Undefined();
}

// udpEnableGro(fd) asks the kernel to hand over runs of datagrams from one
// sender as one buffer (UDP_GRO); recvBatch then reports their size.
Napi::Value UdpEnableGro(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kUdpEnableGro)) return env.Undefined();
  int on = 1;
  if (setsockopt(Int(info[0]), IPPROTO_UDP, UDP_GRO, &on, sizeof on) < 0) {
    return ThrowErrno(env, "setsockopt UDP_GRO", errno);
  }
  return env.Undefined();
}

// udpLocalRecord(fd, record) fills record with the bound address and port.
Napi::Value UdpLocalRecord(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kUdpLocalRecord)) return env.Undefined();
  View<uint8_t> rec = ViewOf<uint8_t>(info[1]);
  if (rec.length < kAddrRecord) return ThrowType(env, "udpLocalRecord: record must be 20 bytes");
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(Int(info[0]), reinterpret_cast<struct sockaddr*>(&ss), &len) < 0) {
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
  // entry[k]: the batch index of message k, so results land in place.
  uint32_t entry[kBatchMax];
};
// All calls run on the event loop thread, so one set of arrays serves them.
MsgArrays g_msg;

// recvBatch(fd, slab, slotSize, headroom, max, lengths, records, segmentSizes) -> count
// Datagram i lands at slab[i*slotSize + headroom]; its sender in records[i*20].
// A datagram larger than the slot is reported with length slotSize-headroom+1
// so the caller can count it as oversize. segmentSizes (Uint32Array, or null
// without UDP_GRO): segmentSizes[i] > 0 says datagram i is a run of
// datagrams of that size (the last may be shorter) from one sender.
Napi::Value RecvBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kRecvBatch)) return env.Undefined();
  int fd = Int(info[0]);
  SlabArgs b;
  if (!SlabOf(info, "recvBatch", &b)) return env.Undefined();
  uint32_t max = b.max;
  View<uint8_t> records = ViewOf<uint8_t>(info[6]);
  View<uint32_t> segment_sizes = ViewOf<uint32_t>(info[7]);
  if ((size_t)max * kAddrRecord > records.length || (segment_sizes.data != nullptr && max > segment_sizes.length)) {
    return ThrowType(env, "recvBatch: records or segmentSizes too small for the batch");
  }
  for (uint32_t i = 0; i < max; i++) {
    g_msg.iovs[i].iov_base = b.slab.data + (size_t)i * b.slot + b.headroom;
    g_msg.iovs[i].iov_len = b.slot - b.headroom;
    struct msghdr* h = &g_msg.msgs[i].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = &g_msg.names[i];
    h->msg_namelen = sizeof g_msg.names[i];
    h->msg_iov = &g_msg.iovs[i];
    h->msg_iovlen = 1;
    if (segment_sizes.data != nullptr) {
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
    if (g_msg.msgs[i].msg_hdr.msg_flags & MSG_TRUNC) len = b.slot - b.headroom + 1;
    b.lengths.data[i] = len;
    SockaddrToRecord(&g_msg.names[i], records.data + (size_t)i * kAddrRecord);
    if (segment_sizes.data == nullptr) continue;
    segment_sizes.data[i] = 0;
    struct msghdr* h = &g_msg.msgs[i].msg_hdr;
    if (h->msg_flags & MSG_TRUNC) continue;
    for (struct cmsghdr* cm = CMSG_FIRSTHDR(h); cm != nullptr; cm = CMSG_NXTHDR(h, cm)) {
      if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO) {
        int size;
        memcpy(&size, CMSG_DATA(cm), sizeof size);
        if (size > 0) segment_sizes.data[i] = (uint32_t)size;
      }
    }
  }
  return Napi::Number::New(env, n);
}

// sendBatch(fd, family, slab, offsets, lengths, records, results, segmentSizes, first, end) -> datagrams sent
// Sends entries first..end-1: datagram i is slab[offsets[i] .. +lengths[i]] to
// records[i*20], on a socket of family 4 or 6 (the caller knows it from
// udpOpen). Several entries may point at the same bytes. results[i] is 0 if
// datagram i was sent, else its errno. segmentSizes (Uint32Array or null): if
// segmentSizes[i] > 0, datagram i is a run of datagrams of that size (the last
// may be shorter) for the kernel to split (UDP GSO, UDP_SEGMENT).
// A full socket buffer ends the call: the datagram that met it and every later
// one get EAGAIN, for the caller to send again once the socket is writable.
// Any other failure (no route, too big, ENOBUFS, ...) is that datagram's
// result, and the rest of the batch goes on.
Napi::Value SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kSendBatch)) return env.Undefined();
  int fd = Int(info[0]);
  int family = Int(info[1]) == 4 ? AF_INET : AF_INET6;
  View<uint8_t> slab = ViewOf<uint8_t>(info[2]);
  View<uint32_t> offsets = ViewOf<uint32_t>(info[3]);
  View<uint32_t> lengths = ViewOf<uint32_t>(info[4]);
  View<uint8_t> records = ViewOf<uint8_t>(info[5]);
  View<int32_t> results = ViewOf<int32_t>(info[6]);
  View<uint32_t> segment_sizes = ViewOf<uint32_t>(info[7]);
  uint32_t first = Uint(info[8]);
  uint32_t end = Uint(info[9]);
  if (first > end || end - first > kBatchMax || end > offsets.length || end > lengths.length ||
      (size_t)end * kAddrRecord > records.length || end > results.length ||
      (segment_sizes.data != nullptr && end > segment_sizes.length)) {
    return ThrowType(env, "sendBatch: arrays too small for the batch");
  }
  uint32_t ready = 0;
  for (uint32_t i = first; i < end; i++) {
    results.data[i] = 0;
    if ((size_t)offsets.data[i] + lengths.data[i] > slab.length) {
      results.data[i] = EINVAL;
      continue;
    }
    g_msg.entry[ready] = i;
    g_msg.iovs[ready].iov_base = slab.data + offsets.data[i];
    g_msg.iovs[ready].iov_len = lengths.data[i];
    struct msghdr* h = &g_msg.msgs[ready].msg_hdr;
    memset(h, 0, sizeof *h);
    socklen_t len;
    RecordToSockaddr(records.data + (size_t)i * kAddrRecord, family, &g_msg.names[ready], &len);
    h->msg_name = &g_msg.names[ready];
    h->msg_namelen = len;
    h->msg_iov = &g_msg.iovs[ready];
    h->msg_iovlen = 1;
    uint32_t segment = segment_sizes.data != nullptr ? segment_sizes.data[i] : 0;
    if (segment > 0 && segment < lengths.data[i]) {
      char* control = g_msg.controls[ready];
      memset(control, 0, kControlSpace);
      h->msg_control = control;
      h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr* cm = CMSG_FIRSTHDR(h);
      cm->cmsg_level = IPPROTO_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t size = (uint16_t)segment;
      memcpy(CMSG_DATA(cm), &size, sizeof size);
    }
    ready++;
  }

  uint32_t sent = 0;
  uint32_t next = 0;
  while (next < ready) {
    int n = sendmmsg(fd, g_msg.msgs + next, ready - next, 0);
    if (n > 0) {
      sent += n;
      next += n;
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      for (; next < ready; next++) results.data[g_msg.entry[next]] = EAGAIN;
      break;
    }
    results.data[g_msg.entry[next]] = err;
    next++;
  }
  return Napi::Number::New(env, sent);
}

// ---------------------------------------------------------------- offloads

// finishChecksum(buf, frameOffset, frameLength, csumStart, csumOffset) -> ok
Napi::Value FinishChecksumJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* frame;
  size_t length;
  if (!CheckArgs(info, sig::kFinishChecksum) || !FrameOf(info, "finishChecksum", &frame, &length)) return env.Undefined();
  bool ok = tsvtep::FinishChecksum(frame, length, Uint(info[3]), Uint(info[4]));
  return Napi::Boolean::New(env, ok);
}

// tcpChecksumValid(buf, frameOffset, frameLength) -> boolean
Napi::Value TcpChecksumValidJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* frame;
  size_t length;
  if (!CheckArgs(info, sig::kTcpChecksumValid) || !FrameOf(info, "tcpChecksumValid", &frame, &length)) return env.Undefined();
  return Napi::Boolean::New(env, tsvtep::TcpChecksumValid(frame, length));
}

// segmentTcp(src, frameOffset, frameLength, gsoSize, maxL3, prefix, dst, dstOffset, dstCapacity, out) -> status
// out = [count, stride, lastLength]; status 0, -1 (not a TCP frame), -2 (dst too small).
Napi::Value SegmentTcpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kSegmentTcp)) return env.Undefined();
  View<uint8_t> src = ViewOf<uint8_t>(info[0]);
  size_t offset = Uint(info[1]);
  size_t length = Uint(info[2]);
  View<uint8_t> prefix = ViewOf<uint8_t>(info[5]);
  View<uint8_t> dst = ViewOf<uint8_t>(info[6]);
  size_t dst_offset = Uint(info[7]);
  size_t dst_cap = Uint(info[8]);
  View<uint32_t> out = ViewOf<uint32_t>(info[9]);
  if (offset + length > src.length || dst_offset + dst_cap > dst.length || out.length < 3) {
    return ThrowType(env, "segmentTcp: region outside its buffer");
  }
  tsvtep::SegmentResult result;
  int status = tsvtep::SegmentTcp(src.data + offset, length, Uint(info[3]), Uint(info[4]), prefix.data, prefix.length,
                                  dst.data + dst_offset, dst_cap, &result);
  if (status == 0) {
    out.data[0] = (uint32_t)result.count;
    out.data[1] = (uint32_t)result.stride;
    out.data[2] = (uint32_t)result.last_length;
  }
  return Napi::Number::New(env, status);
}

// pathMtu(record) -> the kernel's path MTU towards the record's address.
// A UDP socket connected to the address (connect sends nothing) holds the
// route the kernel would use, with what ICMP "too big" taught it; IP_MTU or
// IPV6_MTU reads that route's MTU.
Napi::Value PathMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgs(info, sig::kPathMtu)) return env.Undefined();
  View<uint8_t> rec = ViewOf<uint8_t>(info[0]);
  if (rec.length < kAddrRecord) return ThrowType(env, "pathMtu: address record must be 20 bytes");
  int family = RecordFamily(rec.data);
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

// Calls a JavaScript function when a descriptor is readable or writable (the
// events asked for in start: 1 readable, 2 writable; start again to change
// them). One wake-up per batch, not per frame: the callback drains the
// descriptor itself. One Poller per descriptor (libuv allows no more).
class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("start", &Poller::Start), InstanceMethod("stop", &Poller::Stop),
                        InstanceMethod("close", &Poller::Close)});
  }

  Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    if (!CheckArgs(info, sig::kPoller)) return;
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = new Napi::AsyncContext(env, "tsvtep:poll");
    handle_ = new uv_poll_t;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    int rc = uv_poll_init(loop, handle_, Int(info[0]));
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
    Napi::Env env = info.Env();
    if (!CheckArgs(info, sig::kPollerStart)) return env.Undefined();
    if (!handle_) return env.Undefined();
    int events = Int(info[0]) & (UV_READABLE | UV_WRITABLE);
    int rc = uv_poll_start(handle_, events, OnPoll);
    if (rc < 0) return ThrowErrno(env, "uv_poll_start", -rc);
    // Keep the JS object alive while the handle can call back into it.
    if (!started_) Ref();
    started_ = true;
    return env.Undefined();
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
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    Poller* self = static_cast<Poller*>(handle->data);
    Napi::Env env = self->callback_.Env();
    Napi::HandleScope scope(env);
    Napi::Value err = Napi::Number::New(env, status < 0 ? -status : 0);
    Napi::Value ready = Napi::Number::New(env, status < 0 ? 0 : events);
    self->callback_.MakeCallback(env.Global(), {err, ready}, *self->context_);
  }

  Napi::FunctionReference callback_;
  Napi::AsyncContext* context_ = nullptr;
  uv_poll_t* handle_ = nullptr;
  bool started_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("BATCH_MAX", Napi::Number::New(env, kBatchMax));
  exports.Set("POLL_READABLE", Napi::Number::New(env, UV_READABLE));
  exports.Set("POLL_WRITABLE", Napi::Number::New(env, UV_WRITABLE));
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
  exports.Set("udpSetDontFragment", Napi::Function::New(env, UdpSetDontFragment));
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
