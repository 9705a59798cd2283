/** Progress for long operations, on stderr: a rewritten line on a terminal, sparse lines otherwise. */
export interface Progress {
  update(done: number): void;
  finish(): void;
}

export function createProgress(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true;
  let lastPrinted = -1;
  const line = (done: number): string => {
    const percent = total === 0 ? 100 : Math.floor((done / total) * 100);
    const width = 24;
    const filled = Math.round((percent / 100) * width);
    return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} (${percent}%)`;
  };
  return {
    update(done) {
      if (tty) stream.write(`\r${line(done)}`);
      else {
        const decile = Math.floor((done / Math.max(1, total)) * 10);
        if (decile !== lastPrinted) {
          lastPrinted = decile;
          stream.write(`${line(done)}\n`);
        }
      }
    },
    finish() {
      if (tty) stream.write('\n');
    },
  };
}
