/**
 * A worker thread of the image cache's cold pass (decodeImages in image-cache.ts): decodes the images it
 * claims from the shared job into the shared pixels until none is left, then ends.
 */
import { workerData } from 'node:worker_threads';
import { type DecodeJob, decodeClaimed } from './image-cache.js';

decodeClaimed(workerData as DecodeJob);
