// A descriptor the event loop watches: the TAP and the UDP socket share how
// they are woken up and how they are closed.

import { native, type NativePoller } from './native';

export class PolledDescriptor {
  private poller: NativePoller | undefined;
  private closed = false;

  constructor(readonly fd: number) {}

  /** Calls onReadable whenever data waits; errno is non-zero if polling failed, and polling then stops. */
  watch(onReadable: (errno: number) => void): void {
    // A poller that reports an error is stopped: libuv's keeps firing otherwise (or has
    // stopped itself, unseen), and the owner decides what the error means.
    const poller = new (native().Poller)(this.fd, (errno) => {
      if (errno !== 0) poller.stop();
      onReadable(errno);
    });
    this.poller = poller;
    poller.start();
  }

  /** Stops watching and closes the descriptor (a TAP is then deleted by the kernel). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    native().closeFd(this.fd);
  }
}
