// The bank's public surface for the rest of bankstream (runtime, topics tool, HTTP API).
export {
  buildBankTopology,
  BANK_PROCESSOR,
  DEFAULT_PUNCTUATE_INTERVAL_MS,
  type BankTopics,
  type BankTopologyOptions,
} from './topology.ts';
export { BANK_STORES, type BankStoreName, type AccountRow, type BalanceRow, type TransferEntry } from './stores.ts';
export { CURRENCY_DIGITS, currencyDigits, formatMoney, parseMoney, type MoneyParse } from './money.ts';
export { type Command, type ParsedCommand, parseCommand, type TransferFields } from './commands.ts';
export type { AccountRejectionCode, TransferFailureCode } from './failure-codes.ts';
export type { AuditEventName } from './outcomes.ts';
