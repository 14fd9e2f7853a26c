// A descriptor the event loop watches: the TAP and the UDP socket share how
// they are woken up (readable, and writable again after EAGAIN) and how they
// are closed. One native poller per descriptor, its events changed as needed.

import { native, type NativePoller } from './native';

export class PolledDescriptor {
  private poller: NativePoller | undefined;
  private closed = false;
  private onReadable: ((errno: number) => void) | undefined;
  private onWritable: (() => void) | undefined;
  private paused = false;
  private events = 0;

  constructor(readonly fd: number) {}

  /** Calls onReadable whenever data waits; errno is non-zero if polling failed, and polling then stops. */
  watch(onReadable: (errno: number) => void): void {
    this.onReadable = onReadable;
    this.update();
  }

  /** Stops calling onReadable until resumeReading (data waits in the kernel meanwhile). */
  pauseReading(): void {
    this.paused = true;
    this.update();
  }

  resumeReading(): void {
    this.paused = false;
    this.update();
  }

  /** Calls callback once, when the descriptor is writable (or polling it failed). */
  waitWritable(callback: () => void): void {
    this.onWritable = callback;
    this.update();
  }

  private update(): void {
    if (this.closed) return;
    const addon = native();
    const events = (this.onReadable !== undefined && !this.paused ? addon.POLL_READABLE : 0) | (this.onWritable !== undefined ? addon.POLL_WRITABLE : 0);
    if (events === this.events) return;
    this.events = events;
    if (events === 0) {
      this.poller?.stop();
      return;
    }
    // A poller that reports an error is stopped: libuv's keeps firing otherwise (or has
    // stopped itself, unseen), and the owner decides what the error means.
    this.poller ??= new addon.Poller(this.fd, (errno, ready) => this.onEvent(errno, ready));
    this.poller.start(events);
  }

  private onEvent(errno: number, ready: number): void {
    const { POLL_READABLE, POLL_WRITABLE } = native();
    if (errno !== 0) {
      this.poller?.stop();
      this.events = 0;
    }
    const writable = this.onWritable;
    if (writable !== undefined && (errno !== 0 || (ready & POLL_WRITABLE) !== 0)) {
      this.onWritable = undefined;
      if (errno === 0) this.update();
      writable();
    }
    if (this.onReadable !== undefined && !this.paused && (errno !== 0 || (ready & POLL_READABLE) !== 0)) this.onReadable(errno);
  }

  /** Stops watching and closes the descriptor (a TAP is then deleted by the kernel). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    native().closeFd(this.fd);
  }
}
