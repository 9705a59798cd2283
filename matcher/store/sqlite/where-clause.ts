/** Builds the WHERE clause of a search from optional filters, with bound parameters only. */
export class WhereClause {
  readonly #parts: string[] = [];
  readonly params: unknown[] = [];

  /** `column IN (...)`; an empty list matches nothing, never everything (DIRAC PR#3697). */
  in(column: string, values: readonly unknown[] | undefined): this {
    if (values === undefined) return this;
    if (values.length === 0) {
      this.#parts.push('0');
      return this;
    }
    this.#parts.push(`${column} IN (${values.map(() => '?').join(', ')})`);
    this.params.push(...values);
    return this;
  }

  /** A condition of its own, e.g. `created_at >= ?`, when `value` is given. */
  when(condition: string, value: unknown): this {
    if (value === undefined) return this;
    this.#parts.push(condition);
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
