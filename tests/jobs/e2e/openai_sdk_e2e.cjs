// End-to-end test of the control plane with the official `openai` Node SDK, unmodified: upload a
// training file, create a job on a tiny model, poll its events until it succeeds, list its
// checkpoints, then create a second job and cancel it. Every step prints one line; any mismatch
// throws, and the process exits non-zero. Run by tests/jobs/e2e_openai_sdk_test.cpp with
// OPENAI_BASE_URL, OPENAI_API_KEY, TL_OPENAI_SDK_DIR, TL_TRAIN_FILE set.
const { createRequire } = require('module');
const fs = require('fs');
const sdkRequire = createRequire(process.env.TL_OPENAI_SDK_DIR + '/package.json');
const mod = sdkRequire('openai');
const OpenAI = mod.OpenAI || mod.default || mod;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

async function main() {
  const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });
  const file = await client.files.create({ file: fs.createReadStream(process.env.TL_TRAIN_FILE), purpose: 'fine-tune' });
  check(file.id.startsWith('file-') && file.purpose === 'fine-tune', 'file object ' + JSON.stringify(file));
  console.log('uploaded', file.id, file.bytes, 'bytes');

  const job = await client.fineTuning.jobs.create({
    model: 'tiny', training_file: file.id, suffix: 'e2e', seed: 7,
    method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 1, batch_size: 'auto', learning_rate_multiplier: 'auto' } } },
  });
  check(job.object === 'fine_tuning.job' && job.status === 'validating_files', 'job object ' + JSON.stringify(job));
  console.log('created', job.id);

  let current = job;
  const deadline = Date.now() + 30000;
  while (!['succeeded', 'failed', 'cancelled'].includes(current.status) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    current = await client.fineTuning.jobs.retrieve(job.id);
  }
  check(current.status === 'succeeded', 'job finished as ' + current.status + ' ' + JSON.stringify(current.error));
  check(current.fine_tuned_model && current.fine_tuned_model.startsWith('ft:tiny:e2e:'), 'fine_tuned_model ' + current.fine_tuned_model);

  const events = [];
  for await (const e of client.fineTuning.jobs.listEvents(job.id, { limit: 5 })) events.push(e);  // auto-pagination
  check(events.length >= 8, 'events ' + events.length);
  check(events[0].message === 'The job has successfully completed', 'newest event ' + events[0].message);
  check(events.some((e) => e.type === 'metrics' && e.data && typeof e.data.train_loss === 'number'), 'a metrics event');
  console.log('events', events.length, 'newest:', events[0].message);

  const ckpts = await client.fineTuning.jobs.checkpoints.list(job.id);
  check(ckpts.data.length >= 1, 'checkpoints ' + ckpts.data.length);
  check(ckpts.data[0].object === 'fine_tuning.job.checkpoint' && typeof ckpts.data[0].step_number === 'number', 'checkpoint object');
  console.log('checkpoints', ckpts.data.map((c) => c.step_number).join(','));

  const other = await client.fineTuning.jobs.create({ model: 'tiny', training_file: file.id });
  const cancelled = await client.fineTuning.jobs.cancel(other.id);
  check(cancelled.status === 'cancelled', 'cancel gave ' + cancelled.status);
  console.log('cancelled', other.id);

  const listed = [];
  for await (const j of client.fineTuning.jobs.list({ limit: 1 })) listed.push(j.id);
  check(listed.length === 2 && listed[0] === other.id, 'list ' + listed.join(','));

  let notFound = null;
  try {
    await client.fineTuning.jobs.create({ model: 'no-such-model', training_file: file.id });
  } catch (e) {
    notFound = e;
  }
  check(notFound && notFound.status === 404 && notFound.code === 'model_not_found', 'unknown model error ' + notFound);
  console.log('ok');
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
