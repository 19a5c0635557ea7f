#!/usr/bin/env node
// An ESME built on the third-party `smpp` package (node-smpp), driven by
// tests/interop/test_node_smpp.py.
//
// usage: node esme.js HOST PORT SYSTEM_ID PASSWORD COUNT MODE [TIMEOUT_S]
//   MODE: "transceiver" (one bind_transceiver) or "split" (a bind_transmitter
//         for the submits and a bind_receiver for the receipts)
//
// Binds, submits COUNT messages with registered_delivery 1, answers every
// deliver_sm with deliver_sm_resp (node-smpp leaves that to the application),
// waits for COUNT receipts plus a short grace period (to notice duplicates),
// unbinds and prints one JSON line:
//   {"bind_status": [..], "submits": [{"status", "message_id"}],
//    "receipts": [{"receipted_message_id", "text", "esm_class", "message_state",
//                  "data_coding", "source_addr", "destination_addr"}],
//    "unbind_status": [..], "timed_out": false}
// A refused bind is reported (bind_status) and ends the run with exit code 0.
// Exit code 1 when the whole run does not finish within TIMEOUT_S (default 20);
// the JSON line is printed anyway, with "timed_out": true.
'use strict';

const smpp = require('smpp');

const [host, portText, systemId, password, countText, mode = 'transceiver', timeoutText = '20'] =
  process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const timeoutMs = Number(timeoutText) * 1000;
const GRACE_MS = 500;

if (!host || !port || !systemId || password === undefined || !(count >= 0)) {
  process.stderr.write('usage: node esme.js HOST PORT SYSTEM_ID PASSWORD COUNT MODE [TIMEOUT_S]\n');
  process.exit(2);
}
if (mode !== 'transceiver' && mode !== 'split') {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}

const result = {
  mode,
  bind_status: [],
  submits: [],
  receipts: [],
  other_deliver_sm: 0,
  unbind_status: [],
  errors: [],
  timed_out: false,
};
const sessions = [];
let finished = false;

function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(result) + '\n');
  for (const session of sessions) {
    try {
      session.destroy();
    } catch (e) {
      // already gone
    }
  }
  process.exitCode = code;
  // Let stdout drain, then leave even if a socket lingers.
  setTimeout(() => process.exit(code), 100).unref();
}

const timer = setTimeout(() => {
  result.timed_out = true;
  finish(1);
}, timeoutMs);

function open() {
  return new Promise((resolve, reject) => {
    const session = smpp.connect({ url: `smpp://${host}:${port}` });
    sessions.push(session);
    session.on('error', (e) => {
      result.errors.push(String(e && e.message ? e.message : e));
      reject(e);
    });
    session.on('connect', () => resolve(session));
  });
}

function bind(session, command) {
  return new Promise((resolve) => {
    session[command]({ system_id: systemId, password }, (pdu) => {
      result.bind_status.push(pdu.command_status);
      resolve(pdu.command_status);
    });
  });
}

function text(shortMessage) {
  if (shortMessage === undefined || shortMessage === null) return null;
  const value = Buffer.isBuffer(shortMessage) ? shortMessage : shortMessage.message;
  return Buffer.isBuffer(value) ? value.toString('latin1') : String(value);
}

let receiptsDone = null;
let expected = count;
function receiptsWanted() {
  // Only accepted submits get receipts.
  expected = result.submits.filter((s) => s.status === 0).length;
  return new Promise((resolve) => {
    receiptsDone = resolve;
    checkReceipts();
  });
}
function checkReceipts() {
  if (receiptsDone && result.receipts.length >= expected) {
    const done = receiptsDone;
    receiptsDone = null;
    setTimeout(done, GRACE_MS); // duplicates arriving in the grace period are recorded too
  }
}

function listen(session) {
  session.on('deliver_sm', (pdu) => {
    session.send(pdu.response());
    if (pdu.esm_class & 0x04) {
      result.receipts.push({
        receipted_message_id: pdu.receipted_message_id === undefined ? null : pdu.receipted_message_id,
        text: text(pdu.short_message),
        esm_class: pdu.esm_class,
        message_state: pdu.message_state === undefined ? null : pdu.message_state,
        data_coding: pdu.data_coding,
        source_addr: pdu.source_addr,
        destination_addr: pdu.destination_addr,
      });
      checkReceipts();
    } else {
      result.other_deliver_sm += 1;
    }
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    result.errors.push('server sent unbind');
  });
}

function submit(session, index) {
  return new Promise((resolve) => {
    session.submit_sm(
      {
        source_addr_ton: 5,
        source_addr: 'NODE',
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: `4790000${String(index).padStart(3, '0')}`,
        registered_delivery: 1,
        short_message: `node message ${index}`,
      },
      (pdu) => {
        result.submits.push({ index, status: pdu.command_status, message_id: pdu.message_id });
        resolve();
      },
    );
  });
}

function unbind(session) {
  return new Promise((resolve) => {
    const fallback = setTimeout(resolve, 2000);
    const sent = session.unbind((pdu) => {
      clearTimeout(fallback);
      result.unbind_status.push(pdu.command_status);
      resolve();
    });
    if (!sent) {
      clearTimeout(fallback);
      resolve();
    }
  });
}

async function main() {
  let transmitter;
  let receiver;
  if (mode === 'transceiver') {
    transmitter = receiver = await open();
    listen(receiver);
    if ((await bind(transmitter, 'bind_transceiver')) !== 0) return finish(0);
  } else {
    receiver = await open();
    listen(receiver);
    if ((await bind(receiver, 'bind_receiver')) !== 0) return finish(0);
    transmitter = await open();
    if ((await bind(transmitter, 'bind_transmitter')) !== 0) return finish(0);
  }
  const submits = [];
  for (let i = 0; i < count; i += 1) submits.push(submit(transmitter, i));
  await Promise.all(submits);
  await receiptsWanted();
  for (const session of new Set([transmitter, receiver])) await unbind(session);
  return finish(0);
}

main().catch((e) => {
  result.errors.push(String(e && e.stack ? e.stack : e));
  finish(1);
});
