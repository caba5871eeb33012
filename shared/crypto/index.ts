export { KeyRing, keyId, parseHexKey, parsePreviousKeys, type KeyRingOptions, type PreviousKey } from './keyring.js';
export {
  decrypt,
  decryptJson,
  encrypt,
  encryptJson,
  openString,
  sealString,
  type Envelope,
} from './envelope.js';
export { blindIndex, hmacHex, hmacSha256, normaliseEmail, timingSafeEqualHex } from './hmac.js';
export { randomHex, randomToken, randomUuid } from './random.js';
export { createDecryptStream, createEncryptStream, type EncryptStreamOptions } from './stream.js';
