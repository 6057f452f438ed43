// The console's table and grid views, built with DOM calls only (text is never parsed as HTML).

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function rows(tbody, items, render, empty) {
  tbody.replaceChildren(
    ...(items.length > 0 ? items.map(render) : [el('tr', { class: 'empty' }, el('td', { colspan: 9 }, empty))]),
  );
}

function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : '';
}

function list(numbers) {
  return numbers.length > 0 ? numbers.join(' ') : '–';
}

/** Partition owners seen in the previous snapshot: a changed owner is drawn as just moved. */
const previousOwners = new Map();
const movedAt = new Map();
const MOVED_SHOWN_MS = 15_000;

export function renderCluster(snapshot) {
  const { cluster, instance } = snapshot;
  document.getElementById('generation').textContent =
    cluster.generation === null ? '' : `generation ${cluster.generation}`;
  const now = Date.now();
  const cells = cluster.grid.map((cell) => {
    const before = previousOwners.get(cell.partition);
    if (before !== undefined && cell.owner !== null && before !== cell.owner)
      movedAt.set(cell.partition, { at: now, from: before });
    if (cell.owner !== null) previousOwners.set(cell.partition, cell.owner);
    const moved = movedAt.get(cell.partition);
    const recentlyMoved = moved !== undefined && now - moved.at < MOVED_SHOWN_MS;
    const title = [
      `partition ${cell.partition}: ${cell.state}`,
      cell.owner ? `on ${cell.owner}` : 'no owner',
      cell.standbys.length > 0 ? `standby on ${cell.standbys.join(', ')}` : 'no standby',
      cell.lag === null ? null : `lag ${cell.lag}`,
      recentlyMoved ? `moved from ${moved.from}` : null,
    ]
      .filter(Boolean)
      .join(' · ');
    return el(
      'div',
      {
        class: `cell ${cell.state}${recentlyMoved ? ' moved' : ''}`,
        title,
        'data-partition': cell.partition,
        'data-state': cell.state,
        'data-owner': cell.owner ?? '',
        'data-moved-from': recentlyMoved ? moved.from : null,
      },
      el('b', {}, String(cell.partition)),
      el('span', { class: 'owner' }, cell.owner ?? '—'),
      el('span', { class: 'dots' }, '•'.repeat(cell.standbys.length)),
      recentlyMoved ? el('span', { class: 'moved-from' }, `from ${moved.from}`) : null,
      cell.lag === null ? null : el('span', { class: 'lag' }, `lag ${cell.lag}`),
    );
  });
  document.getElementById('partition-grid').replaceChildren(...cells);
  rows(
    document.querySelector('#instances tbody'),
    cluster.instances,
    (claim) =>
      el(
        'tr',
        { 'data-instance': claim.instanceId, class: claim.instanceId === instance.instanceId ? 'self' : null },
        el('td', {}, claim.instanceId),
        el('td', {}, el('span', { class: `badge ${claim.state === 'RUNNING' ? 'ok' : 'warn'}` }, claim.state)),
        el('td', {}, String(claim.generation)),
        el('td', {}, list(claim.partitions)),
        el('td', {}, list(claim.standby ?? [])),
        el('td', { class: 'dim' }, claim.url),
        el('td', { class: 'dim' }, time(claim.at)),
      ),
    'no instance has published to the directory yet',
  );
  const restoring = instance.assigned.filter((p) => !instance.running.includes(p));
  document.getElementById('local').textContent =
    `${instance.instanceId}: ${instance.state}, running ${list(instance.running)}` +
    (restoring.length > 0
      ? `, restoring ${list(restoring)} (${instance.restoredRecords} changelog records restored so far)`
      : '') +
    `, standby ${list(instance.standby)} (lag ${instance.standbyLagRecords} records)` +
    (instance.stopped.length > 0
      ? `, stopped ${instance.stopped.map((s) => `${s.topic}-${s.partition} (${s.code})`).join(', ')}`
      : '') +
    (instance.brokerUnavailable.length > 0 ? `, waiting for the broker: ${instance.brokerUnavailable.join(', ')}` : '');
}

export function renderDeadLetters(snapshot) {
  const { deadLetters } = snapshot;
  document.getElementById('dlq-topic').textContent = deadLetters.topic;
  rows(
    document.querySelector('#dlq tbody'),
    deadLetters.records,
    (record) =>
      el(
        'tr',
        {
          title: Object.entries(record.headers)
            .map(([k, v]) => `${k}: ${v}`)
            .join('\n'),
        },
        el('td', {}, time(record.timestamp)),
        el(
          'td',
          {},
          `${record.headers['bankstream.source.topic'] ?? '?'}-${record.headers['bankstream.source.partition'] ?? '?'}@${record.headers['bankstream.source.offset'] ?? '?'}`,
        ),
        el('td', {}, record.headers['bankstream.error.node'] ?? ''),
        el('td', { class: 'error-text' }, record.headers['bankstream.error'] ?? ''),
        el('td', { class: 'dim' }, record.key ?? ''),
      ),
    deadLetters.tailing ? 'no dead letters' : 'the dead-letter topic is not tailed',
  );
  const rejects = deadLetters.sinkRejects ?? [];
  rows(
    document.querySelector('#rejects tbody'),
    rejects,
    (reject) =>
      el(
        'tr',
        { class: reject.resolvedAt ? 'resolved' : 'unresolved' },
        el('td', {}, time(reject.rejectedAt)),
        el('td', {}, `${reject.sourceTopic}-${reject.sourcePartition}@${reject.sourceOffset}`),
        el('td', { class: 'error-text' }, reject.error),
        el('td', {}, reject.resolvedAt ? `${time(reject.resolvedAt)} ${reject.resolution ?? ''}` : 'no'),
      ),
    deadLetters.sinkRejectsError ?? 'no sink rejects',
  );
}

export function renderAccount(view, page) {
  const fields = [
    'accountId',
    'ownerId',
    'status',
    'currency',
    'balance',
    'inFlight',
    'overdraftLimit',
    'holds',
    'openedAt',
    'closedAt',
  ];
  const shown = fields.filter((f) => view[f] !== undefined);
  const served = view.servedBy ? [['servedBy', view.servedBy.instanceId]] : [];
  document
    .getElementById('account-view')
    .replaceChildren(
      ...[...shown.map((f) => [f, typeof view[f] === 'object' ? JSON.stringify(view[f]) : view[f]]), ...served].flatMap(
        ([k, v]) => [el('dt', {}, k), el('dd', { 'data-field': k }, String(v))],
      ),
    );
  rows(
    document.querySelector('#history tbody'),
    page.items,
    (item) =>
      el(
        'tr',
        {},
        el('td', {}, time(item.completedAt ?? item.requestedAt)),
        el('td', {}, item.transferId ?? ''),
        el('td', {}, item.type ?? ''),
        el('td', { class: 'num' }, `${item.amount ?? ''} ${item.currency ?? ''}`),
        el('td', {}, item.code ? `${item.status} (${item.code})` : (item.status ?? '')),
      ),
    'no history yet',
  );
}
