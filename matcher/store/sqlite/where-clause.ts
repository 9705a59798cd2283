/**
 * Builds the WHERE clause of a search from optional filters, with bound parameters only. Placeholders
 * are SQLite's `?` unless given (PostgreSQL: `$1`, `$2`, ...); conditions are written with `?`.
 */
export class WhereClause {
  readonly #parts: string[] = [];
  readonly params: unknown[] = [];
  readonly #placeholder: (position: number) => string;

  constructor(placeholder: (position: number) => string = () => '?') {
    this.#placeholder = placeholder;
  }

  #next(): string {
    return this.#placeholder(this.params.length + 1);
  }

  /** `column IN (...)`; an empty list matches nothing, never everything (DIRAC PR#3697). */
  in(column: string, values: readonly unknown[] | undefined): this {
    if (values === undefined) return this;
    if (values.length === 0) {
      this.#parts.push('1 = 0');
      return this;
    }
    const marks = values.map((value) => {
      const mark = this.#next();
      this.params.push(value);
      return mark;
    });
    this.#parts.push(`${column} IN (${marks.join(', ')})`);
    return this;
  }

  /** A condition of its own, e.g. `created_at >= ?`, when `value` is given. */
  when(condition: string, value: unknown): this {
    if (value === undefined) return this;
    this.#parts.push(condition.replace('?', this.#next()));
    this.params.push(value);
    return this;
  }

  raw(condition: string): this {
    this.#parts.push(condition);
    return this;
  }

  get sql(): string {
    return this.#parts.length > 0 ? `WHERE ${this.#parts.join(' AND ')}` : '';
  }
}
