import { expect } from 'vitest';
import { InputError } from '../../src/shared/index.js';

/** The InputError `fn` throws (a test fails when it throws anything else, or nothing). */
export function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}
