export { contentAad } from './aad.js';
export { DEFAULT_UPLOAD_TYPES, typeAllowed } from './allowlist.js';
export { FileIntegrityError, OpenedContent, type ObjectSource } from './content.js';
export { dataKeyRing, newDataKey, wrapDataKey } from './dataKey.js';
export { objectSize, recordCount, recordSpan, type ContentLayout } from './layout.js';
export {
  attachmentsOf,
  fileName,
  findFile,
  insertFile,
  storageKeyOf,
  toFileInfo,
  type AttachmentSummary,
  type FileInfo,
  type FileRow,
  type FileStatus,
  type NewFile,
} from './repository.js';
export { FileStaging, type StagedContent, type StagedEntry, type StagingWriter } from './staging.js';
export { SNIFF_BYTES, sniffType } from './types.js';
