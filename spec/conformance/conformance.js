// spec/conformance/conformance.js: Google's own generated Node client for v1beta3
// (@google-ai/generativelanguage, google-gax REST fallback) run through every method of the surface
// against a running bin/gemini-emulator. It prints one JSON summary of what it saw on stdout; the busted
// spec spec/emulator_conformance_spec.lua asserts it.
//
//   node spec/conformance/conformance.js --url http://127.0.0.1:PORT --key k1 --other-key k2 --other-email E
//
// The client sends what it always sends: `$alt=json;enum-encoding=int` on every call, enums as integers
// in request bodies, the key in `x-goog-api-key`. Every raw HTTP exchange is recorded by wrapping fetch,
// so the summary can say what came over the wire (integer enums) as well as what the client decoded.
'use strict';

const jsonProtos = require('@google-ai/generativelanguage/build/protos/protos.json');
const { v1beta3 } = require('@google-ai/generativelanguage');
const gax = require('google-gax');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const base = new URL(args.url);
const KEY = args.key || 'k1';
const OTHER_KEY = args['other-key'] || 'k2';
const OTHER_EMAIL = args['other-email'] || 'bob@example.com';

// ---- wire capture ------------------------------------------------------------------------------
const wire = [];
// google-gax sends every REST call through its auth client's fetch (google-auth-library -> gaxios), and
// the response it gets back is fetch-like (clone/text/arrayBuffer); record a copy of each body.
const { GoogleAuth } = require('google-auth-library');
async function capture(res, url, init) {
  const entry = {
    method: (init && init.method) || 'GET',
    url: String(url),
    requestBody: init && typeof init.body === 'string' ? init.body : undefined,
    status: res.status,
    contentType: res.headers.get('content-type'),
    vary: res.headers.get('vary'),
  };
  try { entry.body = await res.clone().text(); } catch (e) { entry.body = '<uncaptured: ' + e.message + '>'; }
  wire.push(entry);
}
const realAuthFetch = GoogleAuth.prototype.fetch;
GoogleAuth.prototype.fetch = async function capturedFetch(url, init) {
  let res;
  try {
    res = await realAuthFetch.call(this, url, init);
  } catch (e) {
    if (e && e.response) await capture(e.response, url, init); // 401/403 reject with the response attached
    throw e;
  }
  await capture(res, url, init);
  return res;
};
function lastWire(pred) {
  for (let i = wire.length - 1; i >= 0; i--) if (!pred || pred(wire[i])) return wire[i];
  return undefined;
}
function lastJson(pred) {
  const w = lastWire(pred);
  try { return JSON.parse(w.body); } catch (e) { return undefined; }
}

// ---- clients -----------------------------------------------------------------------------------
function opts(key, extra) {
  return Object.assign({
    apiKey: key,
    fallback: 'rest',
    apiEndpoint: base.hostname,
    port: Number(base.port),
    protocol: base.protocol.replace(':', ''),
  }, extra || {});
}
const text = new v1beta3.TextServiceClient(opts(KEY));
const discuss = new v1beta3.DiscussServiceClient(opts(KEY));
const models = new v1beta3.ModelServiceClient(opts(KEY));
const perms = new v1beta3.PermissionServiceClient(opts(KEY));
const otherModels = new v1beta3.ModelServiceClient(opts(OTHER_KEY));
const otherText = new v1beta3.TextServiceClient(opts(OTHER_KEY));
const badKeyModels = new v1beta3.ModelServiceClient(opts('not-a-configured-key'));

// The stock v1beta3 client has no HTTP rule for google.longrunning.Operations (lroOptions.httpRules = [],
// the service config has none); GetOperation falls back to the proto's `/v1/{name=operations/**}`.
// A second ModelServiceClient is built from protos whose GetOperation carries the rule Google's v1
// service config formalised (`GET /v1/{name=tunedModels/*/operations/*}`, the path Google's v1beta3
// tuning tutorial polled), so the client's own LRO support (operation.promise()) can be exercised.
const ops = jsonProtos.nested.google.nested.longrunning.nested.Operations.methods;
const stockGetOperation = ops.GetOperation;
ops.GetOperation = {
  requestType: 'GetOperationRequest',
  responseType: 'Operation',
  options: { '(google.api.http).get': '/v1/{name=tunedModels/*/operations/*}' },
  parsedOptions: [{ '(google.api.http)': { get: '/v1/{name=tunedModels/*/operations/*}' } }],
};
const lroModels = new v1beta3.ModelServiceClient(opts(KEY));
ops.GetOperation = stockGetOperation;

// ---- helpers -----------------------------------------------------------------------------------
const summary = { checks: {}, errors: {}, notes: [] };
function record(name, value) { summary.checks[name] = value; }
function errInfo(e) {
  if (!e) return null;
  return {
    code: e.code,                       // gRPC code as the client mapped it
    httpStatusCode: e.httpStatusCode,
    message: e.message,
    reason: e.reason,
    domain: e.domain,
    metadata: e.errorInfoMetadata,
    statusDetails: (e.statusDetails || []).map((d) => (d && d.constructor && d.constructor.name) || typeof d),
  };
}
async function expectError(name, fn) {
  try {
    await fn();
    summary.errors[name] = { code: 'NO ERROR' };
  } catch (e) {
    summary.errors[name] = errInfo(e);
  }
}
async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    summary.failures = summary.failures || {};
    summary.failures[name] = String((e && (e.stack || e.message)) || e).slice(0, 800);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const isInt = (v) => typeof v === 'number' && Number.isInteger(v);

// ---- the run -----------------------------------------------------------------------------------
async function main() {
  // models.get / models.list with paging
  await step('models', async () => {
    const [m] = await models.getModel({ name: 'models/text-bison-001' });
    record('getModel', {
      name: m.name, version: m.version, displayName: m.displayName, inputTokenLimit: m.inputTokenLimit,
      outputTokenLimit: m.outputTokenLimit, supportedGenerationMethods: m.supportedGenerationMethods,
      temperature: m.temperature, topP: m.topP, topK: m.topK,
    });
    const [all] = await models.listModels({ pageSize: 1 }); // autoPaginate: follows nextPageToken
    const listCalls = wire.filter((w) => /\/v1beta3\/models\?/.test(w.url) && w.method === 'GET');
    const [page1, next, raw1] = await models.listModels({ pageSize: 2 }, { autoPaginate: false });
    record('listModels', {
      names: all.map((x) => x.name),
      autoPaginateRequests: listCalls.length,
      firstPageSize: page1.length,
      nextRequest: next ? { pageSize: next.pageSize, hasToken: typeof next.pageToken === 'string' && next.pageToken.length > 0 } : null,
      rawHasNextPageToken: !!(raw1 && raw1.nextPageToken),
    });
    const seen = [];
    for await (const x of models.listModelsAsync({ pageSize: 3 })) seen.push(x.name);
    record('listModelsAsync', seen);
  });

  // generateText on a base model, with integer enums in the request
  await step('generateText', async () => {
    const [r] = await text.generateText({
      model: 'models/text-bison-001',
      prompt: { text: 'Write a story about a magic backpack.' },
      temperature: 0.5, candidateCount: 2, maxOutputTokens: 64, topP: 0.9, topK: 20,
      safetySettings: [{ category: 'HARM_CATEGORY_TOXICITY', threshold: 'BLOCK_ONLY_HIGH' }],
      stopSequences: ['zzzz'],
    });
    const w = lastWire((x) => /:generateText/.test(x.url));
    const rawBody = JSON.parse(w.body);
    const reqBody = JSON.parse(w.requestBody);
    record('generateText', {
      url: w.url.replace(/^https?:\/\/[^/]+/, ''),
      contentType: w.contentType,
      vary: w.vary,
      requestEnumsInt: isInt(reqBody.safetySettings[0].category) && isInt(reqBody.safetySettings[0].threshold),
      candidates: r.candidates.length,
      outputIsString: r.candidates.every((c) => typeof c.output === 'string' && c.output.length > 0),
      decodedCategories: r.candidates[0].safetyRatings.map((s) => s.category),
      decodedProbabilities: r.candidates[0].safetyRatings.map((s) => s.probability),
      rawCategories: rawBody.candidates[0].safetyRatings.map((s) => s.category),
      rawProbabilities: rawBody.candidates[0].safetyRatings.map((s) => s.probability),
      rawKeys: Object.keys(rawBody),
    });
    const [blocked] = await text.generateText({ model: 'models/text-bison-001', prompt: { text: 'x [[block:safety]]' } });
    const rawBlocked = lastJson((x) => /:generateText/.test(x.url));
    record('generateTextBlocked', {
      candidates: blocked.candidates.length,
      filters: blocked.filters.map((f) => f.reason),
      rawFilters: rawBlocked.filters.map((f) => f.reason),
      rawKeys: Object.keys(rawBlocked),
      feedbackCategory: blocked.safetyFeedback[0] && blocked.safetyFeedback[0].rating.category,
      rawFeedback: rawBlocked.safetyFeedback,
    });
  });

  await step('text', async () => {
    const [c] = await text.countTextTokens({ model: 'models/text-bison-001', prompt: { text: 'hello internationalization!' } });
    record('countTextTokens', { tokenCount: c.tokenCount });
    const [e] = await text.embedText({ model: 'models/embedding-gecko-001', text: 'say something nice!' });
    const norm = Math.sqrt(e.embedding.value.reduce((s, v) => s + v * v, 0));
    record('embedText', { dims: e.embedding.value.length, norm: Number(norm.toFixed(4)) });
    const [b] = await text.batchEmbedText({ model: 'models/embedding-gecko-001', texts: ['red apple', 'green apple', 'jet engine'] });
    const dot = (x, y) => x.reduce((s, v, i) => s + v * y[i], 0);
    const v = b.embeddings.map((x) => x.value);
    record('batchEmbedText', {
      count: b.embeddings.length, dims: v[0].length,
      applesCloser: dot(v[0], v[1]) > dot(v[0], v[2]),
      sameAsSingle: null,
    });
  });

  await step('discuss', async () => {
    const [m] = await discuss.generateMessage({
      model: 'models/chat-bison-001', prompt: { messages: [{ content: 'hi' }] }, temperature: 0, candidateCount: 1,
    });
    record('generateMessage', {
      candidates: m.candidates.map((x) => ({ author: x.author, hasContent: x.content.length > 0 })),
      messages: m.messages.map((x) => ({ author: x.author, content: x.content })),
      filters: m.filters.length,
    });
    const [t] = await discuss.countMessageTokens({
      model: 'models/chat-bison-001',
      prompt: { messages: [{ content: 'How many tokens?' }, { content: 'For this whole conversation?' }] },
    });
    record('countMessageTokens', { tokenCount: t.tokenCount });
    const [blocked] = await discuss.generateMessage({
      model: 'models/chat-bison-001', prompt: { context: 'be nice [[block:other]]', messages: [{ content: 'hi' }] },
    });
    const rawBlocked = lastJson((x) => /:generateMessage/.test(x.url));
    record('generateMessageBlocked', {
      candidates: blocked.candidates.length, filters: blocked.filters.map((f) => f.reason),
      messages: blocked.messages.length, rawKeys: Object.keys(rawBlocked), rawFilters: rawBlocked.filters,
    });
    const many = [];
    for (let i = 0; i < 101; i++) many.push('text ' + i);
    await expectError('tooManyTexts', () => text.batchEmbedText({ model: 'models/embedding-gecko-001', texts: many }));
  });

  // tuning: create (LRO), poll, get/list/patch, generate on the tuned model, permissions, transfer, delete
  let tunedName;
  await step('tuning', async () => {
    const examples = [];
    for (let i = 1; i <= 15; i += 2) examples.push({ textInput: String(i), output: String(i + 1) });
    const [op, , rawOp] = await models.createTunedModel({
      tunedModel: {
        displayName: 'number generator',
        baseModel: 'models/text-bison-001',
        tuningTask: {
          hyperparameters: { batchSize: 4, learningRate: 0.001, epochCount: 3 },
          trainingData: { examples: { examples } },
        },
      },
    });
    tunedName = op.metadata && op.metadata.tunedModel;
    const createWire = lastWire((x) => x.method === 'POST' && /\/v1beta3\/tunedModels\?/.test(x.url));
    record('createTunedModel', {
      opName: op.name, done: op.done, metadataTunedModel: tunedName, totalSteps: op.metadata && op.metadata.totalSteps,
      rawOp: rawOp ? { name: rawOp.name, done: rawOp.done } : null,
      rawBody: JSON.parse(createWire.body),
      url: createWire.url.replace(/^https?:\/\/[^/]+/, ''),
    });

    const [early] = await models.getTunedModel({ name: tunedName });
    const rawEarly = lastJson((x) => x.url.includes('/v1beta3/' + tunedName + '?'));
    record('tunedModelEarly', { state: early.state, rawState: rawEarly.state });

    // a slow tuning (2000 steps: 2 examples, 1000 epochs, batch 1): generateText while it is CREATING must be FAILED_PRECONDITION
    const [slowOp] = await models.createTunedModel({
      tunedModelId: 'slow-tuning',
      tunedModel: { baseModel: 'models/text-bison-001', tuningTask: {
        hyperparameters: { batchSize: 1, epochCount: 1000 },
        trainingData: { examples: { examples: [{ textInput: 'a', output: 'b' }, { textInput: 'c', output: 'd' }] } } } },
    });
    await expectError('generateTextNotActive', () => text.generateText({ model: slowOp.metadata.tunedModel, prompt: { text: 'a' } }));
    // the stock client's LRO support
    try {
      const checked = await models.checkCreateTunedModelProgress(op.name);
      record('stockLro', { ok: true, done: checked.done });
    } catch (e) {
      record('stockLro', { ok: false, message: String(e.message).slice(0, 200) });
    }
    // the client's LRO support with the /v1/ GetOperation rule
    const lroOp = await lroModels.checkCreateTunedModelProgress(op.name);
    const [tunedFromLro, metaFromLro, finalOp] = await lroOp.promise();
    const pollWires = wire.filter((x) => x.url.includes('/v1/' + op.name));
    const lastPoll = JSON.parse(pollWires[pollWires.length - 1].body);
    record('lro', {
      polls: pollWires.length,
      pollPath: pollWires[0].url.replace(/^https?:\/\/[^/]+/, ''),
      done: finalOp.done,
      responseName: tunedFromLro && tunedFromLro.name,
      responseState: tunedFromLro && tunedFromLro.state,
      metaCompletedSteps: metaFromLro && metaFromLro.completedSteps,
      metaCompletedPercent: metaFromLro && metaFromLro.completedPercent,
      metaSnapshots: metaFromLro && metaFromLro.snapshots.length,
      rawDone: lastPoll.done,
      rawResponseType: lastPoll.response && lastPoll.response['@type'],
      rawResponseState: lastPoll.response && lastPoll.response.state,
      rawMetadataType: lastPoll.metadata && lastPoll.metadata['@type'],
      rawKeys: Object.keys(lastPoll),
    });

    // poll via getTunedModel state as well (the tutorial's alternative)
    let tm;
    for (let i = 0; i < 200; i++) {
      [tm] = await models.getTunedModel({ name: tunedName });
      if (tm.state !== 'CREATING') break;
      await sleep(20);
    }
    const rawTm = lastJson((x) => x.url.includes('/v1beta3/' + tunedName + '?'));
    record('getTunedModel', {
      name: tm.name, state: tm.state, rawState: rawTm.state, baseModel: tm.baseModel, sourceModel: tm.sourceModel,
      displayName: tm.displayName, temperature: tm.temperature, topP: tm.topP, topK: tm.topK,
      createTimeSeconds: tm.createTime && typeof tm.createTime.seconds, rawCreateTime: rawTm.createTime,
      snapshots: tm.tuningTask.snapshots.length, hyperparameters: tm.tuningTask.hyperparameters,
      hasTrainingData: !!rawTm.tuningTask.trainingData, rawKeys: Object.keys(rawTm),
      rawTuningTaskKeys: Object.keys(rawTm.tuningTask),
    });

    const [listed] = await models.listTunedModels({});
    const [tpage, tnext] = await models.listTunedModels({ pageSize: 1 }, { autoPaginate: false });
    record('listTunedModels', { names: listed.map((x) => x.name), firstPage: tpage.map((x) => x.name),
      hasNext: !!(tnext && tnext.pageToken) });
    await models.deleteTunedModel({ name: slowOp.metadata.tunedModel });

    const [patched] = await models.updateTunedModel({
      tunedModel: { name: tunedName, description: 'counts up', temperature: 0.2, displayName: 'ignored' },
      updateMask: { paths: ['description', 'temperature'] },
    });
    const patchWire = lastWire((x) => x.method === 'PATCH');
    record('updateTunedModel', {
      description: patched.description, temperature: patched.temperature, displayName: patched.displayName,
      url: patchWire.url.replace(/^https?:\/\/[^/]+/, ''),
    });

    const [gen] = await text.generateText({ model: tunedName, prompt: { text: '5' }, candidateCount: 2, temperature: 1 });
    record('generateTextTuned', { outputs: gen.candidates.map((c) => c.output) });

    // tuning from a tuned model (the tunedModelSource member of the oneof), driven by the client's LRO
    const [fromOp] = await lroModels.createTunedModel({
      tunedModelId: 'from-tuned',
      tunedModel: { tunedModelSource: { tunedModel: tunedName },
        tuningTask: { trainingData: { examples: { examples: [{ textInput: 'x', output: 'y' }] } } } },
    });
    const [fromTm] = await fromOp.promise();
    const [fromGot] = await models.getTunedModel({ name: 'tunedModels/from-tuned' });
    record('tunedFromTuned', {
      sourceModel: fromGot.sourceModel, tunedModelSource: fromGot.tunedModelSource, baseModel: fromGot.baseModel,
      lroName: fromTm.name, lroState: fromTm.state,
      hyperparameters: fromGot.tuningTask.hyperparameters,
    });
    await models.deleteTunedModel({ name: 'tunedModels/from-tuned' });

    // permissions
    const [owner] = await perms.listPermissions({ parent: tunedName });
    const [created] = await perms.createPermission({
      parent: tunedName, permission: { granteeType: 'USER', emailAddress: OTHER_EMAIL, role: 'READER' },
    });
    const createPermWire = lastWire((x) => x.method === 'POST' && /\/permissions\?/.test(x.url));
    const rawCreated = JSON.parse(createPermWire.body);
    const [got] = await perms.getPermission({ name: created.name });
    const [everyone] = await perms.createPermission({
      parent: tunedName, permission: { granteeType: 'EVERYONE', role: 'READER' },
    });
    const [page1, next] = await perms.listPermissions({ parent: tunedName, pageSize: 2 }, { autoPaginate: false });
    const [allPerms] = await perms.listPermissions({ parent: tunedName, pageSize: 1 });
    // bob can read and generate as READER, but not update
    const [bobSees] = await otherModels.getTunedModel({ name: tunedName });
    const [bobGen] = await otherText.generateText({ model: tunedName, prompt: { text: '3' } });
    await expectError('readerCannotUpdate', () => otherModels.updateTunedModel({
      tunedModel: { name: tunedName, description: 'x' }, updateMask: { paths: ['description'] } }));
    const [updated] = await perms.updatePermission({
      permission: { name: created.name, role: 'WRITER' }, updateMask: { paths: ['role'] },
    });
    const [bobPatched] = await otherModels.updateTunedModel({
      tunedModel: { name: tunedName, description: 'bob was here' }, updateMask: { paths: ['description'] } });
    await expectError('updatePermissionNoMask', () => perms.updatePermission({
      permission: { name: created.name, role: 'READER' } }));
    const [deletedEveryone] = await perms.deletePermission({ name: everyone.name });
    await expectError('getDeletedPermission', () => perms.getPermission({ name: everyone.name }));
    record('permissions', {
      ownerList: owner.map((p) => ({ granteeType: p.granteeType, emailAddress: p.emailAddress, role: p.role })),
      created: { name: created.name, granteeType: created.granteeType, emailAddress: created.emailAddress, role: created.role },
      rawCreated,
      got: { name: got.name, role: got.role },
      everyone: { granteeType: everyone.granteeType, role: everyone.role, hasEmail: everyone.emailAddress !== undefined && everyone.emailAddress !== null && everyone.emailAddress !== '' },
      firstPage: page1.length, hasNext: !!(next && next.pageToken),
      all: allPerms.map((p) => p.role + ':' + p.granteeType),
      bobSees: bobSees.name, bobGenerated: bobGen.candidates.length,
      updatedRole: updated.role, bobPatched: bobPatched.description,
      deleteReturned: deletedEveryone,
    });

    // transferOwnership: bob becomes OWNER, alice WRITER
    const [tr] = await models.listTunedModels({}); // keep the model reference warm
    void tr;
    const [transferred] = await perms.transferOwnership({ name: tunedName, emailAddress: OTHER_EMAIL });
    const transferWire = lastWire((x) => /:transferOwnership/.test(x.url));
    const otherPerms = new v1beta3.PermissionServiceClient(opts(OTHER_KEY));
    const [afterTransfer] = await otherPerms.listPermissions({ parent: tunedName });
    await expectError('oldOwnerCannotDelete', () => models.deleteTunedModel({ name: tunedName }));
    record('transferOwnership', {
      returned: transferred, rawBody: transferWire.body.trim(), url: transferWire.url.replace(/^https?:\/\/[^/]+/, ''),
      roles: afterTransfer.map((p) => p.emailAddress + ':' + p.role).sort(),
    });

    const [del] = await otherModels.deleteTunedModel({ name: tunedName });
    const delWire = lastWire((x) => x.method === 'DELETE');
    record('deleteTunedModel', { returned: del, rawBody: delWire.body.trim(), status: delWire.status });
    await expectError('getDeletedTunedModel', () => otherModels.getTunedModel({ name: tunedName }));
  });

  // tuning that fails: the operation ends with its error set; the client's LRO surfaces it
  await step('failedTuning', async () => {
    const [op] = await lroModels.createTunedModel({
      tunedModel: {
        baseModel: 'models/text-bison-001',
        tuningTask: { hyperparameters: { batchSize: 1, epochCount: 2 },
          trainingData: { examples: { examples: [{ textInput: 'a', output: 'b' }, { textInput: 'c', output: '[[fail]]' }] } } },
      },
    }, {});
    try {
      await op.promise();
      record('failedTuning', { rejected: false });
    } catch (e) {
      const [tm] = await models.getTunedModel({ name: op.metadata.tunedModel });
      record('failedTuning', { rejected: true, error: errInfo(e), state: tm.state });
    }
  });

  // errors as the client maps them
  await expectError('unknownModel', () => models.getModel({ name: 'models/no-such-model' }));
  await expectError('unknownModelGenerate', () => text.generateText({ model: 'models/no-such-model', prompt: { text: 'hi' } }));
  await expectError('unsupportedMethod', () => text.embedText({ model: 'models/text-bison-001', text: 'hi' }));
  await expectError('badKey', () => badKeyModels.listModels({}));
  await expectError('candidateCountRange', () => text.generateText({ model: 'models/text-bison-001', prompt: { text: 'hi' }, candidateCount: 9 }));
  await expectError('missingPrompt', () => text.generateText({ model: 'models/text-bison-001' }));
  await expectError('unknownTunedModel', () => models.getTunedModel({ name: 'tunedModels/does-not-exist-123' }));
  await expectError('badTunedModelId', () => models.createTunedModel({ tunedModelId: 'Bad_Id',
    tunedModel: { baseModel: 'models/text-bison-001', tuningTask: { trainingData: { examples: { examples: [{ textInput: 'a', output: 'b' }] } } } } }));
  await expectError('otherUsersModel', async () => {
    const [op] = await models.createTunedModel({ tunedModelId: 'alice-private',
      tunedModel: { baseModel: 'models/text-bison-001', tuningTask: { trainingData: { examples: { examples: [{ textInput: 'a', output: 'b' }] } } } } });
    void op;
    return otherModels.getTunedModel({ name: 'tunedModels/alice-private' });
  });
  await expectError('permissionOnMissingModel', () => perms.listPermissions({ parent: 'tunedModels/nothing-here' }));
  // The generated client cannot send an unknown field (it encodes from the proto); send one raw through the
  // same fetch and let the client library's own error parser (GoogleError.parseHttpError) map the body.
  await step('unknownField', async () => {
    const res = await fetch(`${base.origin}/v1beta3/models/text-bison-001:generateText?$alt=json%3Benum-encoding=int`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'x-goog-api-key': KEY },
      body: JSON.stringify({ prompt: { text: 'hi', foo: 1 }, bar: true }),
    });
    const body = await res.json();
    const e = gax.GoogleError.parseHttpError(body);
    summary.errors.unknownField = Object.assign(errInfo(e), { httpStatus: res.status, raw: body });
  });

  // the emulator's control API (faults, rate limit) as the client sees it: transport-level status mapping
  const control = (method, path, body) => fetch(`${base.origin}${path}`, {
    method, headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined,
  });
  await step('faults', async () => {
    await control('POST', '/emulator/v1/faults', { rules: [
      { match: { method: 'generateMessage' }, action: 'error', status: 503, errorStatus: 'UNAVAILABLE' },
      { match: { method: 'countMessageTokens' }, action: 'html', status: 502 },
    ] });
    await expectError('fault503', () => discuss.generateMessage({ model: 'models/chat-bison-001', prompt: { messages: [{ content: 'hi' }] } }));
    await expectError('faultHtml', () => discuss.countMessageTokens({ model: 'models/chat-bison-001', prompt: { messages: [{ content: 'hi' }] } }));
    await control('DELETE', '/emulator/v1/faults');
    await control('POST', '/emulator/v1/ratelimit', { requests: 1, windowMs: 60000 });
    await text.countTextTokens({ model: 'models/text-bison-001', prompt: { text: 'one' } });
    await expectError('rateLimited', () => text.countTextTokens({ model: 'models/text-bison-001', prompt: { text: 'two' } }));
    await control('DELETE', '/emulator/v1/ratelimit');
  });

  summary.requests = wire.length;
  summary.altOnEveryApiCall = wire.filter((w) => /\/v1(beta3)?\//.test(w.url))
    .every((w) => w.url.includes('$alt=json%3Benum-encoding=int') || w.url.includes('$alt=json;enum-encoding=int'));
  summary.withoutAlt = wire.filter((w) => /\/v1(beta3)?\//.test(w.url) && !w.url.includes('$alt=json%3Benum-encoding=int')).map((w) => w.url);
  summary.contentTypes = [...new Set(wire.map((w) => w.contentType))];
  summary.varies = [...new Set(wire.map((w) => w.vary))];
  process.stdout.write(JSON.stringify(summary) + '\n');
  for (const c of [text, discuss, models, perms, otherModels, otherText, badKeyModels, lroModels]) {
    try { await c.close(); } catch (e) { /* ignore */ }
  }
}

main().then(() => process.exit(0), (e) => {
  process.stdout.write(JSON.stringify({ fatal: String((e && (e.stack || e.message)) || e), summary }) + '\n');
  process.exit(1);
});
