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
    const healthy = snapshot.instance.state === 'RUNNING' && snapshot.cluster.grid.every((c) => c.state === 'running');
    $('health').textContent = healthy
      ? 'healthy'
      : snapshot.instance.state === 'RUNNING'
        ? 'partitions moving'
        : snapshot.instance.state;
    $('health').className = `badge ${healthy ? 'ok' : 'warn'}`;
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
