import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError, ERRORS, isRetryable, phraseOf, type ErrorCode } from '../../src/errors.ts';

describe('the error table', () => {
  it('every code says whether it is terminal or retryable, with a phrase and a meaning', () => {
    for (const [code, row] of Object.entries(ERRORS)) {
      assert.match(code, /^LN_ERR_[A-Z_]+$/);
      assert.ok(row.kind === 'terminal' || row.kind === 'retryable', code);
      assert.ok(row.phrase.length > 0 && row.means.length > 0, code);
    }
  });

  it('DriverError.retryable comes from the table', () => {
    assert.equal(new DriverError('LN_ERR_TIMEOUT', 'x').retryable, true);
    assert.equal(new DriverError('LN_ERR_KERNEL_REFUSED', 'x').retryable, false);
    assert.equal(new DriverError('LN_ERR_LINK_CONFLICT', 'x').retryable, false);
    for (const code of Object.keys(ERRORS) as ErrorCode[]) assert.equal(new DriverError(code, 'x').retryable, isRetryable(code));
    assert.equal(phraseOf('LN_ERR_TIMEOUT'), 'the kernel did not converge in time');
  });
});
