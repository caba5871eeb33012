/**
 * The types accepted by default (BOTSERVER_UPLOAD_TYPES replaces the list): text, common images, PDF, office
 * documents (OOXML, OpenDocument, RTF and the legacy compound-file formats). Never executables, archives or SVG.
 */
export const DEFAULT_UPLOAD_TYPES: readonly string[] = [
  'text/plain',
  'text/markdown',
  'text/csv',
  'text/html',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'application/pdf',
  'application/rtf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.oasis.opendocument.text',
  'application/vnd.oasis.opendocument.spreadsheet',
  'application/vnd.oasis.opendocument.presentation',
  'application/x-cfb',
];

/** Whether `type` is allowed by a list of exact types or `major/*` patterns. */
export function typeAllowed(type: string, allowed: readonly string[]): boolean {
  return allowed.some((entry) => entry === type || (entry.endsWith('/*') && type.startsWith(entry.slice(0, -1))));
}
