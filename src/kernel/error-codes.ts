/**
 * The error code of a kernel command's message (stderr, or the message a failed batch line got).
 * `LN_ERR_KERNEL_REFUSED` (terminal) when trying the same again cannot succeed: no permission,
 * an argument the kernel rejects, a feature it lacks. Anything else (a device busy or not there
 * yet, a race with another writer, a timeout) is `LN_ERR_KERNEL_EXEC`, which the loop retries.
 */
export function kernelErrorCode(message: string): 'LN_ERR_KERNEL_REFUSED' | 'LN_ERR_KERNEL_EXEC' {
  return REFUSED.test(message) ? 'LN_ERR_KERNEL_REFUSED' : 'LN_ERR_KERNEL_EXEC';
}

const REFUSED = /Operation not permitted|Permission denied|Invalid argument|not supported|Unknown device type|Numerical result out of range/i;
