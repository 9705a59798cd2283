/**
 * Byte sizes as people write them in flags and config files: `1048576`, `512KiB`, `64MiB`, `100GiB`,
 * `1TiB` (binary units; `KB`/`MB`/`GB`/`TB` are read as the same binary units, as most tools do for
 * memory and disk). Anything else is refused rather than guessed.
 */
const UNIT_BYTES: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  KB: 1024,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1024 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1024 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1024 ** 4,
  TIB: 1024 ** 4,
};

/** The number of bytes, or null when `text` is not a size (negative, fractional bytes, unknown unit). */
export function parseByteSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  if (!match?.[1]) return null;
  const unit = UNIT_BYTES[(match[2] ?? '').toUpperCase()];
  if (unit === undefined) return null;
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(Math.round(bytes))) return null;
  // "1.5KiB" is 1536 bytes; "1.5" bytes is not a size.
  if (unit === 1 && !Number.isInteger(bytes)) return null;
  return Math.round(bytes);
}

/** `67108864` → `64 MiB`, for messages and help texts. */
export function formatByteSize(bytes: number): string {
  for (const [unit, size] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= size && bytes % (size / 1024) === 0) {
      const value = bytes / size;
      return `${Number.isInteger(value) ? value : value.toFixed(2)} ${unit}`;
    }
  }
  return `${bytes} bytes`;
}
