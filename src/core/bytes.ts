// Copying bytes without allocating. Buffer.prototype.copy creates a
// Uint8Array view whenever the source is a sub-range, which on the data path
// means garbage per frame; copyWithin and a plain loop do not.

/** Copies src[start..end) to dst[at..]. Within one buffer the ranges may overlap. */
export function copyBytes(src: Buffer, start: number, end: number, dst: Buffer, at: number): void {
  if (src === dst) {
    dst.copyWithin(at, start, end);
    return;
  }
  // Between buffers only small pieces are copied (headers, ICMP quotes).
  for (let i = start; i < end; i++) dst[at + i - start] = src[i];
}
