// The engine's Segmenter, done by the native addon (see native/offload.cc).

import type { Segmenter } from '../core/offload';
import { native } from './native';

export function nativeSegmenter(): Segmenter {
  const addon = native();
  return {
    finishChecksum: (buf, frame, length, csumStart, csumOffset) => addon.finishChecksum(buf, frame, length, csumStart, csumOffset),
    tcpChecksumValid: (buf, frame, length) => addon.tcpChecksumValid(buf, frame, length),
    segmentTcp: (src, frame, length, gsoSize, maxL3, prefix, dst, dstOffset, dstCapacity, out) =>
      addon.segmentTcp(src, frame, length, gsoSize, maxL3, prefix, dst, dstOffset, dstCapacity, out),
  };
}
