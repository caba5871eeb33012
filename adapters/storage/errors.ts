import { AppError } from '../../shared/errors.js';

/** There is no object under the key (never stored, or deleted). */
export class StorageNotFoundError extends AppError {
  constructor(message = 'No such stored object') {
    super('not_found', message, { status: 404, expose: true });
  }
}

/** A ranged read starts at or beyond the end of the object (HTTP 416). */
export class StorageRangeError extends AppError {
  constructor(message = 'The requested range is outside the stored object') {
    super('range_not_satisfiable', message, { status: 416, expose: true });
  }
}

/** The file handed to `putFile` holds fewer bytes than it was to store (cut short or replaced meanwhile). */
export class StorageSourceError extends Error {
  override readonly name = 'StorageSourceError';
}
