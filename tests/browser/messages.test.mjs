// messages.test.mjs — the chat side of the client in a real browser: live messages without a
// reload (pushed, and fetched while on a polling fallback), starting a chat by username, a
// failed sign-in, and the layout at phone width.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openAs, openChat, transportOf, screenshot } from './harness.mjs';

let server;
let browser;
let chatId;
let pollingChatId;

before(async () => {
  server = await startServer({
    users: [
      ['alice', 'Alice Liddell'],
      ['bob', 'Bob Builder'],
      ['carol', 'Carol'],
      ['dave', 'Dave'],
      ['erin', 'Erin'],
    ],
    chats: [
      ['alice', 'bob'],
      ['carol', 'dave'],
    ],
  });
  [chatId, pollingChatId] = server.chatIds;
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const messageTexts = (page) => page.getByTestId('message').locator('.message-body').allTextContents();

async function send(page, text) {
  await page.getByTestId('message-input').fill(text);
  await page.getByTestId('message-send').click();
}

test('a message appears on the other side at once, without a reload', async () => {
  const pageA = await openAs(browser, server, 'alice');
  const pageB = await openAs(browser, server, 'bob');
  await openChat(pageA, chatId);
  await openChat(pageB, chatId);
  assert.equal(await transportOf(pageB), 'websocket');
  const loads = [];
  pageB.on('load', () => loads.push(Date.now()));

  await send(pageA, 'Hello Bob, are you there?');
  await pageB.getByTestId('message').filter({ hasText: 'Hello Bob, are you there?' }).waitFor({ timeout: 5000 });
  await send(pageB, 'Yes! <b>not bold</b>');
  await pageA.getByTestId('message').filter({ hasText: 'Yes! <b>not bold</b>' }).waitFor({ timeout: 5000 });

  // Each side shows each message once (the sender's own copy and its push are merged).
  assert.deepEqual(await messageTexts(pageA), ['Hello Bob, are you there?', 'Yes! <b>not bold</b>']);
  assert.deepEqual(await messageTexts(pageB), ['Hello Bob, are you there?', 'Yes! <b>not bold</b>']);
  assert.equal(await pageA.locator('.message-body b').count(), 0, 'text is never parsed as HTML');
  assert.deepEqual(loads, [], 'the page was not reloaded');
  await screenshot(pageB, 'chat-desktop');

  // A message in a chat that is not open marks it unread in the list.
  await pageB.evaluate(() => {
    location.hash = '';
  });
  await send(pageA, 'Ping while you look elsewhere');
  await pageB.locator(`[data-testid="chat-item"][data-chat-id="${chatId}"].unread`).waitFor({ timeout: 5000 });
  await pageA.context().close();
  await pageB.context().close();
});

test('messages still arrive without a reload when only polling works', async () => {
  const options = { query: '?transports=polling' };
  const pageA = await openAs(browser, server, 'carol', options);
  const pageB = await openAs(browser, server, 'dave', options);
  await openChat(pageA, pollingChatId);
  await openChat(pageB, pollingChatId);
  assert.equal(await transportOf(pageB), 'polling');
  await send(pageA, 'Sent while polling');
  await pageB.getByTestId('message').filter({ hasText: 'Sent while polling' }).waitFor({ timeout: 10000 });
  // The guide's polling line, every 1.5 s.
  assert.ok(pageB.consoleLines.some((line) => /^\[Polling\] Response: true Signals: \d+$/.test(line)));
  await pageA.context().close();
  await pageB.context().close();
});

test('a new chat can be started with a username; an unknown one is explained', async () => {
  const erin = await openAs(browser, server, 'erin', { viewport: { width: 375, height: 740 } });
  assert.equal(await erin.locator('#chat-list-empty').isVisible(), true);
  await erin.locator('#new-chat-username').fill('nobody-here');
  await erin.getByTestId('new-chat-submit').click();
  await erin.getByTestId('new-chat-error').filter({ hasText: 'No user called' }).waitFor({ timeout: 5000 });
  await erin.locator('#new-chat-username').fill('alice');
  await erin.getByTestId('new-chat-submit').click();
  await erin.getByTestId('message-input').waitFor({ timeout: 5000 });
  assert.equal((await erin.locator('#chat-name').textContent()).trim(), 'Alice Liddell');
  await screenshot(erin, 'chat-phone');
  // At phone width the chat fills the screen and the list is one tap away.
  assert.equal(await erin.locator('.sidebar').isVisible(), false);
  await erin.locator('#back').click();
  await erin.getByTestId('chat-item').first().waitFor({ timeout: 5000 });
  await screenshot(erin, 'chat-list-phone');
  await erin.context().close();
});

test('a wrong password shows a clear message and stays on the sign-in page', async () => {
  const context = await browser.newContext({ viewport: { width: 375, height: 740 } });
  const page = await context.newPage();
  await page.goto(server.url);
  await page.getByTestId('login-username').fill('alice');
  await page.getByTestId('login-password').fill('not-the-password');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-error').filter({ hasText: 'Wrong username or password.' }).waitFor({ timeout: 5000 });
  assert.equal(await page.getByTestId('chat-item').count(), 0);
  await screenshot(page, 'login-error-phone');
  await context.close();
});
