import type { Client, EventName } from "./client.js";
import { BridgeError } from "./errors.js";
import type { Events } from "./protocol.js";

/** One event of a feed, tagged with its name. */
export type Tagged<E extends EventName> = { [K in E]: { event: K; params: Events[K] } }[E];

/**
 * The events of one query or job, in order. It subscribes before the request
 * that starts the work is sent, so nothing is lost when an event overtakes
 * the answer: until `bind(id)` it keeps every event that passes `scope`,
 * afterwards only those whose `idOf` is the bound id.
 */
export class Feed<E extends EventName> {
  private readonly queue: Tagged<E>[] = [];
  private waiter: ((event: Tagged<E> | BridgeError) => void) | undefined;
  private id: string | undefined;
  private failure: BridgeError | undefined;
  private readonly offs: (() => void)[] = [];

  constructor(
    client: Client,
    events: readonly E[],
    private readonly scope: (params: Events[E]) => boolean,
    private readonly idOf: (params: Events[E]) => string,
  ) {
    for (const event of events) {
      this.offs.push(client.on(event, (params) => this.push({ event, params } as Tagged<E>)));
    }
    this.offs.push(client.onClose((reason) => this.fail(new BridgeError("DISCONNECTED", `the bridge is gone (${reason})`))));
  }

  /** From now on only events of this id; earlier ones of other ids are dropped. */
  bind(id: string): void {
    this.id = id;
    const mine = this.queue.filter((e) => this.idOf(e.params) === id);
    this.queue.length = 0;
    this.queue.push(...mine);
  }

  /** Events received and not yet taken. */
  get pending(): number {
    return this.queue.length;
  }

  /** The next event; rejects when the bridge goes away. */
  next(): Promise<Tagged<E>> {
    const first = this.queue.shift();
    if (first) return Promise.resolve(first);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = (event) => (event instanceof BridgeError ? reject(event) : resolve(event));
    });
  }

  dispose(): void {
    for (const off of this.offs) off();
    this.offs.length = 0;
  }

  private push(event: Tagged<E>): void {
    if (!this.scope(event.params)) return;
    if (this.id !== undefined && this.idOf(event.params) !== this.id) return;
    const waiter = this.waiter;
    if (waiter && this.id !== undefined) {
      this.waiter = undefined;
      waiter(event);
    } else {
      this.queue.push(event);
    }
  }

  private fail(error: BridgeError): void {
    this.failure = error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(error);
  }
}
