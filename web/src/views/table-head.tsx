/** A table's header row: one column header per name (an empty name for a column of buttons). */
export function TableHead({ columns }: { columns: readonly string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((column, index) => (
          <th scope="col" key={`${index}:${column}`}>
            {column}
          </th>
        ))}
      </tr>
    </thead>
  );
}
