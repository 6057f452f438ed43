// Writes API commands to the input topic in the wire format of DESIGN.md, keyed by the account the command
// acts on, through an idempotent producer (acks=all, broker-side dedup of retried batches) with the
// Java-compatible partitioner, so a command lands on the partition whose task owns the account.
import type { Config } from '../config/config.ts';
import { createIdempotentProducer } from '../kafka/clients.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import type { BankstreamProducer } from '../kafka/producer.ts';
import { unavailable } from '../problems/errors.ts';

export interface OpenAccountCommand {
  type: 'open_account';
  accountId: string;
  ownerId: string;
  currency: string;
  overdraftLimit?: string;
}

export interface CloseAccountCommand {
  type: 'close_account';
  accountId: string;
}

export interface SingleLegCommand {
  type: 'deposit' | 'withdrawal';
  transferId: string;
  accountId: string;
  amount: string;
  currency: string;
}

export interface TransferCommand {
  type: 'transfer';
  transferId: string;
  from: string;
  to: string;
  amount: string;
  currency: string;
  reference?: string;
}

/** A hold (README-BANK "Holds"): a transfer's fields plus exactly one deadline; its id is its transferId. */
export interface HoldCommand {
  type: 'hold';
  transferId: string;
  from: string;
  to: string;
  amount: string;
  currency: string;
  reference?: string;
  timeoutMs?: number;
  expiresAt?: string;
}

/** A post (optionally of part: amount with its currency) or void of the hold (from, holdId). */
export interface ResolveHoldCommand {
  type: 'post_hold' | 'void_hold';
  transferId: string;
  holdId: string;
  from: string;
  amount?: string;
  currency?: string;
}

export type HoldApiCommand = HoldCommand | ResolveHoldCommand;
/** The commands answered by a transaction_completed / transaction_failed outcome under their transferId. */
export type MoneyCommand = SingleLegCommand | TransferCommand | HoldApiCommand;
export type ApiCommand = OpenAccountCommand | CloseAccountCommand | MoneyCommand;

/** The record key: the account whose task decides the command (`from` for a transfer or a hold command). */
export function commandKey(command: ApiCommand): string {
  return 'from' in command ? command.from : command.accountId;
}

export class CommandSender {
  readonly #producer: BankstreamProducer;
  readonly #topic: string;

  constructor(config: Config) {
    this.#topic = config.topics.input;
    this.#producer = createIdempotentProducer({
      bootstrapBrokers: config.kafkaBrokers,
      security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
      clientId: `${config.appId}-${config.instanceId}-api-commands`,
      connectTimeoutMs: 5000,
      requestTimeoutMs: 15_000,
      produceTimeoutMs: 10_000,
      retries: 3,
      retryDelayMs: 100,
    });
  }

  /** Sends one command with `requestedAt` = now; resolves once the broker acknowledged it (acks=all). */
  async send(command: ApiCommand, requestedAt: string): Promise<void> {
    const value = Buffer.from(JSON.stringify({ ...command, requestedAt }), 'utf8');
    try {
      await this.#producer.send({
        messages: [{ topic: this.#topic, key: Buffer.from(commandKey(command), 'utf8'), value }],
      });
    } catch (error) {
      throw unavailable(
        'kafka_unavailable',
        'the command could not be written to Kafka; retry with the same transferId',
        2,
        error,
      );
    }
  }

  async close(): Promise<void> {
    await this.#producer.close();
  }
}
