// @ts-check

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** @param {unknown} value @returns {value is string} */
export function isUuid(value) {
  return typeof value === 'string' && UUID.test(value);
}

/** @param {unknown} bytes */
export function formatSize(bytes) {
  const size = Number(bytes);
  if (!Number.isFinite(size) || size < 0) return '';
  if (size < 1024) return `${size} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A server timestamp in the reader's locale; the raw text when it is not a date. @param {string | null | undefined} iso */
export function formatTime(iso) {
  const date = new Date(iso ?? '');
  return Number.isNaN(date.getTime()) ? (iso ?? '') : dateTime.format(date);
}

/** `yes` / `no` for table cells. @param {unknown} value */
export const yesNo = (value) => (value === true ? 'yes' : 'no');
