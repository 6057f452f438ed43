// The topology drawn as layered SVG: topics read → sources → processors (with their stores) → sinks →
// topics written; a sink writing a topic that a source reads (the repartition loop) is drawn as a curve back.
const SVG = 'http://www.w3.org/2000/svg';
const BOX_W = 170;
const BOX_H = 34;
const COL_GAP = 55;
const ROW_GAP = 14;

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

let drawnKey = null;

export function renderTopology(topology) {
  const key = topology.text;
  if (key === drawnKey) return;
  drawnKey = key;
  const readTopics = [...new Set(topology.nodes.filter((n) => n.kind === 'source').flatMap((n) => n.topics))];
  const writtenOnly = [...new Set(topology.nodes.filter((n) => n.kind === 'sink').flatMap((n) => n.topics))].filter(
    (t) => !readTopics.includes(t),
  );
  const processors = topology.nodes.filter((n) => n.kind === 'processor');
  const stores = [...new Set(processors.flatMap((p) => p.stores))];
  const columns = [
    readTopics.map((t) => ({ id: `topic:${t}`, label: t, kind: 'topic' })),
    topology.nodes.filter((n) => n.kind === 'source').map((n) => ({ id: n.name, label: n.name, kind: 'source' })),
    [
      ...processors.map((n) => ({ id: n.name, label: n.name, kind: 'processor' })),
      ...stores.map((s) => ({ id: `store:${s}`, label: s, kind: 'store' })),
    ],
    // Sinks that feed a source (the loop) last, so that the loop's curve passes under the others.
    topology.nodes
      .filter((n) => n.kind === 'sink')
      .sort(
        (a, b) =>
          Number(a.topics.some((t) => readTopics.includes(t))) - Number(b.topics.some((t) => readTopics.includes(t))),
      )
      .map((n) => ({ id: n.name, label: n.name, kind: 'sink' })),
    writtenOnly.map((t) => ({ id: `topic:${t}`, label: t, kind: 'topic' })),
  ];
  const position = new Map();
  const tallest = Math.max(...columns.map((c) => c.length));
  const height = tallest * (BOX_H + ROW_GAP) + 60;
  columns.forEach((column, c) => {
    const top = (height - 40 - column.length * (BOX_H + ROW_GAP)) / 2;
    column.forEach((box, r) =>
      position.set(box.id, { ...box, x: 10 + c * (BOX_W + COL_GAP), y: top + r * (BOX_H + ROW_GAP) }),
    );
  });
  const width = 20 + columns.length * (BOX_W + COL_GAP) - COL_GAP;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'topology' });
  const defs = svg('defs');
  const marker = svg('marker', {
    id: 'arrow',
    viewBox: '0 0 10 10',
    refX: 10,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: 'auto-start-reverse',
  });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }));
  defs.append(marker);
  root.append(defs);
  const edges = [];
  for (const node of topology.nodes) {
    if (node.kind === 'source') for (const t of node.topics) edges.push([`topic:${t}`, node.name, 'flow']);
    for (const child of node.children) edges.push([node.name, child, 'flow']);
    if (node.kind === 'processor') for (const s of node.stores) edges.push([node.name, `store:${s}`, 'store']);
    if (node.kind === 'sink')
      for (const t of node.topics) edges.push([node.name, `topic:${t}`, readTopics.includes(t) ? 'loop' : 'flow']);
  }
  for (const [from, to, kind] of edges) {
    const a = position.get(from);
    const b = position.get(to);
    if (!a || !b) continue;
    let d;
    if (kind === 'loop') {
      // Back from the sink column to the topic it feeds, under everything else.
      const x1 = a.x + BOX_W / 2;
      const y1 = a.y + BOX_H;
      const x2 = b.x + BOX_W / 2;
      const y2 = b.y + BOX_H;
      d = `M ${x1} ${y1} C ${x1} ${height - 5}, ${x2} ${height - 5}, ${x2} ${y2}`;
    } else if (kind === 'store') {
      d = `M ${a.x + BOX_W / 2} ${a.y + BOX_H} L ${b.x + BOX_W / 2} ${b.y}`;
    } else {
      const x1 = a.x + BOX_W;
      const y1 = a.y + BOX_H / 2;
      const x2 = b.x;
      const y2 = b.y + BOX_H / 2;
      d = `M ${x1} ${y1} C ${x1 + COL_GAP / 2} ${y1}, ${x2 - COL_GAP / 2} ${y2}, ${x2} ${y2}`;
    }
    root.append(svg('path', { d, class: `edge ${kind}`, 'marker-end': kind === 'store' ? 'none' : 'url(#arrow)' }));
  }
  const changelogs = new Map(topology.stores.map((s) => [s.name, s.changelog]));
  for (const box of position.values()) {
    const g = svg('g', { class: `node ${box.kind}`, 'data-node': box.id });
    const title =
      box.kind === 'store'
        ? `store ${box.label}; changelog ${changelogs.get(box.label) ?? 'none'}`
        : `${box.kind} ${box.label}`;
    g.append(svg('title', {}, title));
    g.append(svg('rect', { x: box.x, y: box.y, width: BOX_W, height: BOX_H, rx: box.kind === 'topic' ? 17 : 4 }));
    const label = box.label.length > 26 ? `${box.label.slice(0, 25)}…` : box.label;
    g.append(svg('text', { x: box.x + BOX_W / 2, y: box.y + BOX_H / 2 + 4, 'text-anchor': 'middle' }, label));
    root.append(g);
  }
  const loopTopics = topology.repartitionTopics.join(', ');
  if (loopTopics)
    root.append(
      svg(
        'text',
        { x: width / 2, y: height - 8, 'text-anchor': 'middle', class: 'caption' },
        `repartition loop: ${loopTopics}`,
      ),
    );
  document.getElementById('topology-graph').replaceChildren(root);
}
