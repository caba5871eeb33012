/** Quotes a PostgreSQL identifier (role, database) for interpolation into SQL that cannot take parameters. */
export function quoteIdentifier(name: string): string {
  if (name.length === 0 || name.length > 63 || name.includes('\0')) {
    throw new RangeError('Invalid PostgreSQL identifier');
  }
  return `"${name.replaceAll('"', '""')}"`;
}
