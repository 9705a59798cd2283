/**
 * Builds the WHERE clause of a search from optional filters, with bound parameters only. Placeholders
 * are SQLite's `?` unless given (PostgreSQL: `$1`, `$2`, ...); conditions are written with `?`.
 */
export class WhereClause {
  readonly #parts: string[] = [];
  readonly params: unknown[] = [];
  readonly #placeholder: (position: number) => string;
  /** Parameters bound before this clause's own (a group inside another clause numbers on from them). */
  readonly #offset: number;

  constructor(placeholder: (position: number) => string = () => '?', offset = 0) {
    this.#placeholder = placeholder;
    this.#offset = offset;
  }

  #next(): string {
    return this.#placeholder(this.#offset + this.params.length + 1);
  }

  #marks(values: readonly unknown[]): string {
    return values
      .map((value) => {
        const mark = this.#next();
        this.params.push(value);
        return mark;
      })
      .join(', ');
  }

  /** `column IN (...)`; an empty list matches nothing, never everything (DIRAC PR#3697). */
  in(column: string, values: readonly unknown[] | undefined): this {
    if (values === undefined) return this;
    if (values.length === 0) {
      this.#parts.push('1 = 0');
      return this;
    }
    this.#parts.push(`${column} IN (${this.#marks(values)})`);
    return this;
  }

  /** `column NOT IN (...)`; an empty list excludes nothing. */
  notIn(column: string, values: readonly unknown[]): this {
    if (values.length > 0) this.#parts.push(`${column} NOT IN (${this.#marks(values)})`);
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

  /** Conditions built by `build`, joined with `joiner` and added in parentheses as one condition. */
  group(build: (inner: WhereClause) => void, joiner: 'AND' | 'OR'): this {
    const inner = new WhereClause(this.#placeholder, this.#offset + this.params.length);
    build(inner);
    if (inner.#parts.length === 0) {
      // An empty OR is false, an empty AND true.
      if (joiner === 'OR') this.#parts.push('1 = 0');
      return this;
    }
    this.#parts.push(`(${inner.#parts.join(` ${joiner} `)})`);
    this.params.push(...inner.params);
    return this;
  }

  get sql(): string {
    return this.#parts.length > 0 ? `WHERE ${this.#parts.join(' AND ')}` : '';
  }
}
