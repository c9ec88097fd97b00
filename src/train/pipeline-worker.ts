/**
 * A pipeline stage on a worker thread: its own tfjs and backend, a Stage (stage.ts) fed by the message
 * port of the previous stage (stage 1: by the main thread), passing what it forwards to the next stage's
 * port and its replies to the main thread.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { useBackend, type BackendName } from '../backend.js';
import { stageName, type ChainMessage, type StageInit, type StageReply } from './pipeline-protocol.js';
import { Stage } from './stage.js';

/** A thread stage's workerData: the stage's init and its ports. */
export interface ThreadStageInit {
  init: StageInit;
  upstream: MessagePort | null;
  downstream: MessagePort | null;
}

const { init, upstream, downstream } = workerData as ThreadStageInit;
const main = parentPort!;
const who = stageName(init.stage, init);

function reply(message: StageReply): void {
  main.postMessage(message);
}

function transferables(m: ChainMessage): ArrayBuffer[] {
  return m.type === 'step' ? [m.h.buffer, m.y.buffer, ...(m.v ? [m.v.buffer] : [])].map((b) => b as ArrayBuffer) : [];
}

async function start(): Promise<void> {
  await useBackend(init.run.backend as BackendName, init.run.threads);
  const stage = Stage.create(init);
  // Messages are handled one at a time, in arrival order (= seq order on a port).
  let queue = Promise.resolve();
  (upstream ?? main).on('message', (m: ChainMessage) => {
    queue = queue
      .then(async () => {
        const out = await stage.handle(m);
        out.replies.forEach(reply);
        if (out.forward && downstream) downstream.postMessage(out.forward, transferables(out.forward));
      })
      .catch((e: Error) => reply({ type: 'error', stage: init.stage, who, message: e.message, stack: e.stack ?? '' }));
  });
  reply({ type: 'ready', stage: init.stage, seq: stage.seq });
}

start().catch((e: Error) => reply({ type: 'error', stage: init.stage, who, message: e.message, stack: e.stack ?? '' }));
