// The operations console: log in, then poll GET /v1/admin/console and redraw every view.
import * as api from './api.js';
import { renderCharts, resizeCharts } from './charts.js';
import { renderTopology } from './topology.js';
import { renderAccount, renderCluster, renderDeadLetters } from './views.js';

const POLL_MS = 2000;
let timer;

const $ = (id) => document.getElementById(id);

function showApp(visible) {
  $('login-view').hidden = visible;
  $('app').hidden = !visible;
  $('logout').hidden = !visible;
}

async function refresh() {
  try {
    const snapshot = await api.consoleSnapshot();
    $('instance').textContent = `${snapshot.instance.instanceId} · ${snapshot.instance.url}`;
    const problems = problemsOf(snapshot);
    $('health').textContent = problems.length === 0 ? 'healthy' : problems.join(' · ');
    $('health').className = `badge ${problems.length === 0 ? 'ok' : 'warn'}`;
    renderCluster(snapshot);
    renderCharts(snapshot.flow.samples);
    const sink = snapshot.flow.sink;
    $('sink').textContent = sink
      ? `sink ${sink.state}: ${sink.rowsWritten} rows, ${sink.batchesWritten} batches, ${sink.rejectsWritten} rejects` +
        (sink.lastError ? `; last error: ${sink.lastError}` : '')
      : 'no Postgres sink on this instance';
    renderTopology(snapshot.topology);
    renderDeadLetters(snapshot);
    $('status').textContent = `updated ${new Date(snapshot.at).toLocaleTimeString()}`;
    $('status').className = 'dim';
  } catch (error) {
    if (error instanceof api.ApiProblem && (error.status === 401 || error.status === 403)) {
      logout(error.status === 403 ? 'this console needs an admin token' : 'the session has expired; log in again');
      return;
    }
    $('status').textContent = `update failed: ${error.message}`;
    $('status').className = 'error';
  }
}

/** What an operator should look at first, from the snapshot (empty when all is well). */
function problemsOf(snapshot) {
  const { instance, cluster, flow } = snapshot;
  const problems = [];
  if (instance.state !== 'RUNNING') problems.push(instance.state);
  const notRunning = cluster.grid.filter((c) => c.state !== 'running');
  if (notRunning.length > 0)
    problems.push(`${notRunning.length} partition(s) ${[...new Set(notRunning.map((c) => c.state))].join('/')}`);
  if (instance.brokerUnavailable.length > 0) problems.push('broker unavailable');
  const unresolved = flow.sink?.unresolvedRejects?.count ?? 0;
  if (unresolved > 0) problems.push(`${unresolved} unresolved sink reject(s)`);
  if (flow.sink && flow.sink.state !== 'running') problems.push(`sink ${flow.sink.state}`);
  return problems;
}

function loop() {
  clearTimeout(timer);
  void refresh().finally(() => {
    if (api.hasToken()) timer = setTimeout(loop, POLL_MS);
  });
}

function logout(message = '') {
  clearTimeout(timer);
  api.setToken('');
  showApp(false);
  $('login-error').textContent = message;
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('login-error').textContent = '';
  const pasted = $('token').value.trim();
  try {
    if (pasted) {
      api.setToken(pasted);
    } else {
      const issued = await api.login($('username').value.trim(), $('password').value);
      if (issued.role !== 'admin') {
        $('login-error').textContent = `${$('username').value} is a ${issued.role}; the console needs an admin`;
        return;
      }
      api.setToken(issued.access_token);
    }
    $('password').value = '';
    $('token').value = '';
    showApp(true);
    loop();
  } catch (error) {
    $('login-error').textContent = error.message;
  }
});

$('logout').addEventListener('click', () => logout());

$('lookup-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const id = $('account').value.trim();
  $('lookup-error').textContent = '';
  if (!id) return;
  try {
    const [view, page] = await Promise.all([api.account(id), api.history(id)]);
    renderAccount(view, page);
  } catch (error) {
    $('account-view').replaceChildren();
    $('lookup-error').textContent = error.message;
  }
});

window.addEventListener('resize', () => resizeCharts());
