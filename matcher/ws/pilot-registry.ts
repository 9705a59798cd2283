/**
 * The pilots connected to this matcher process, by pilot id, so that a user's kill reaches the pilot
 * at once instead of waiting for its next heartbeat. With several replicas, ClusterSignals hands a
 * command or a drain for a pilot connected elsewhere to the replica that holds it.
 */
export interface CommandReceiver {
  deliverPendingCommands(jobId: number, attempt: number): void;
  /** Tells the pilot to stop taking work (an administrator's drain). */
  deliverDrain(reason: string): void;
  /** Forget the last credential check: the next frame re-checks the session's token and key. */
  recheckCredentials(): void;
}

export class PilotRegistry {
  readonly #pilots = new Map<string, CommandReceiver>();

  register(pilotId: string, receiver: CommandReceiver): void {
    this.#pilots.set(pilotId, receiver);
  }

  unregister(pilotId: string, receiver: CommandReceiver): void {
    if (this.#pilots.get(pilotId) === receiver) this.#pilots.delete(pilotId);
  }

  /** Pilots connected here now. */
  get size(): number {
    return this.#pilots.size;
  }

  isConnected(pilotId: string): boolean {
    return this.#pilots.has(pilotId);
  }

  notifyCommands(pilotId: string, jobId: number, attempt: number): void {
    this.#pilots.get(pilotId)?.deliverPendingCommands(jobId, attempt);
  }

  /** Returns whether the pilot is connected here (else it learns of the drain when it reconnects). */
  drain(pilotId: string, reason: string): boolean {
    const receiver = this.#pilots.get(pilotId);
    receiver?.deliverDrain(reason);
    return receiver !== undefined;
  }

  /** After a revocation here: every session re-checks its credential at its next frame. */
  recheckCredentials(): void {
    for (const receiver of this.#pilots.values()) receiver.recheckCredentials();
  }
}
