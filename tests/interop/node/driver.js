#!/usr/bin/env node
// An ESME on the third-party `smpp` package (node-smpp) that Python drives step
// by step, for tests/interop/test_node_operations.py (through node_esme.py).
//
// usage: node driver.js HOST PORT [LIFETIME_S]
//
// Reads one JSON request a line on stdin and answers each with one JSON line on
// stdout carrying the same "id":
//   {"id", "op": "open"}                          connect (one session per driver)
//   {"id", "op": "send", "command", "params"}     any node-smpp command shortcut
//        (bind_transceiver, submit_sm, submit_multi, query_sm, cancel_sm, ...);
//        answers {"id", "response": <the response PDU>} once it arrives
//   {"id", "op": "receipts"}                      every deliver_sm seen so far
//   {"id", "op": "close"}                         unbind (if bound), then close
// In "params", {"$hex": "0102"} stands for a Buffer; everything else is given to
// node-smpp as it is, so its own encoders (GSM 03.38 for data_coding 0, UTF-16BE
// for 8, {udh, message} for a UDH) do the work, as in an application.
// In answers a Buffer becomes {"$hex": ".."} and a Date {"$date": ISO string or
// "invalid"}.
//
// Two read-side hooks, both to see the octets on the wire rather than
// node-smpp's interpretation of them: deliver_sm short_message keeps its raw
// octets (as `raw`, next to node-smpp's decoded `message`), and query_sm_resp
// final_date stays the 16-character SMPP time string (node-smpp's own Date
// reading of it is reported as `final_date_parsed`).
//
// The driver exits when stdin closes or after LIFETIME_S (default 120) seconds.
'use strict';

const readline = require('readline');
const smpp = require('smpp');

const [host, portText, lifetimeText = '120'] = process.argv.slice(2);
const port = Number(portText);
if (!host || !port) {
  process.stderr.write('usage: node driver.js HOST PORT [LIFETIME_S]\n');
  process.exit(2);
}

// --- the two read-side hooks ---------------------------------------------------

const messageFilter = smpp.commands.deliver_sm.params.short_message.filter;
smpp.commands.deliver_sm.params.short_message.filter = {
  encode: messageFilter.encode,
  decode: function decode(value, skipUdh) {
    const decoded = messageFilter.decode.call(this, value, skipUdh);
    if (Buffer.isBuffer(value) && decoded && typeof decoded === 'object') {
      decoded.raw = value;
    }
    return decoded;
  },
};
const timeFilter = smpp.commands.query_sm_resp.params.final_date.filter;
smpp.commands.query_sm_resp.params.final_date.filter = {
  encode: timeFilter.encode,
  decode: (value) => value,
};

// --- JSON both ways ------------------------------------------------------------

function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === 'object') {
    if (typeof value.$hex === 'string') return Buffer.from(value.$hex, 'hex');
    const result = {};
    for (const [key, item] of Object.entries(value)) result[key] = revive(item);
    return result;
  }
  return value;
}

function plain(value) {
  if (Buffer.isBuffer(value)) return { $hex: value.toString('hex') };
  if (value instanceof Date) {
    return { $date: Number.isNaN(value.getTime()) ? 'invalid' : value.toISOString() };
  }
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    const result = {};
    for (const [key, item] of Object.entries(value)) {
      if (typeof item !== 'function') result[key] = plain(item);
    }
    return result;
  }
  return value;
}

function answer(id, body) {
  process.stdout.write(JSON.stringify({ id, ...body }) + '\n');
}

// --- the session -----------------------------------------------------------------

let session = null;
let bound = false;
const deliveries = [];
const events = [];

function open() {
  return new Promise((resolve, reject) => {
    session = smpp.connect({ url: `smpp://${host}:${port}` });
    session.on('error', (e) => {
      events.push(`error: ${e && e.message ? e.message : e}`);
      reject(e);
    });
    session.on('close', () => events.push('close'));
    session.on('connect', () => resolve());
    session.on('deliver_sm', (pdu) => {
      session.send(pdu.response());
      deliveries.push(plain(pdu));
    });
    session.on('enquire_link', (pdu) => session.send(pdu.response()));
    session.on('unbind', (pdu) => {
      session.send(pdu.response());
      events.push('server sent unbind');
    });
  });
}

function send(command, params) {
  return new Promise((resolve, reject) => {
    if (typeof session[command] !== 'function') {
      reject(new Error(`node-smpp has no command ${command}`));
      return;
    }
    const sent = session[command](revive(params || {}), (pdu) => {
      if (command.startsWith('bind_') && pdu.command_status === 0) bound = true;
      const response = plain(pdu);
      if (pdu.command === 'query_sm_resp' && typeof pdu.final_date === 'string') {
        response.final_date_parsed = pdu.final_date ? plain(timeFilter.decode(pdu.final_date)) : null;
      }
      resolve(response);
    });
    if (!sent) reject(new Error(`could not send ${command}: socket not writable`));
  });
}

function close() {
  return new Promise((resolve) => {
    if (!session) {
      resolve(null);
      return;
    }
    const done = (status) => {
      try {
        session.destroy();
      } catch (e) {
        // already gone
      }
      session = null;
      resolve(status);
    };
    if (!bound) {
      done(null);
      return;
    }
    const fallback = setTimeout(() => done(null), 2000);
    const sent = session.unbind((pdu) => {
      clearTimeout(fallback);
      done(pdu.command_status);
    });
    if (!sent) {
      clearTimeout(fallback);
      done(null);
    }
  });
}

async function handle(request) {
  const { id, op } = request;
  try {
    if (op === 'open') {
      await open();
      answer(id, { ok: true });
    } else if (op === 'send') {
      answer(id, { response: await send(request.command, request.params) });
    } else if (op === 'receipts') {
      answer(id, { deliveries, events });
    } else if (op === 'close') {
      answer(id, { unbind_status: await close(), events });
    } else {
      answer(id, { error: `unknown op ${op}` });
    }
  } catch (e) {
    answer(id, { error: String(e && e.stack ? e.stack : e) });
  }
}

function quit(code) {
  if (session) {
    try {
      session.destroy();
    } catch (e) {
      // already gone
    }
  }
  // Let stdout drain, then leave even if a socket lingers.
  setTimeout(() => process.exit(code), 100).unref();
}

setTimeout(() => {
  process.stderr.write('driver.js: lifetime over\n');
  quit(1);
}, Number(lifetimeText) * 1000).unref();

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  let request;
  try {
    request = JSON.parse(line);
  } catch (e) {
    answer(null, { error: `not JSON: ${line}` });
    return;
  }
  handle(request);
});
lines.on('close', () => quit(0));
