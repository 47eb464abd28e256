// A loop's pause that another caller can end early: `idle(ms)` waits until `wake()` or `ms`
// (forever without `ms`). One pause at a time, which is all a single loop needs.
export class Waker {
  private wakeUp: (() => void) | null = null;

  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  idle(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? null : setTimeout(() => this.wake(), ms);
      this.wakeUp = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
    });
  }
}
