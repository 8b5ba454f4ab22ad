"""Self-test of tests/fakes/telegram.py against the real python-telegram-bot 22.8 client."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
)

from tests.fakes.telegram import FakeTelegram, parse_telegram_html, utf16_len

PRIVATE = 1001  # a private chat's id is the user's id
GROUP = -1001234567890
ADMIN = 2002
OTHER_BOT_TOKEN = "987654321:AAother-token"


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch):
    """Opt in to PTB 22's timedelta time periods (RetryAfter.retry_after), silencing its
    PTBDeprecationWarning."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def fake():
    with FakeTelegram() as server:
        server.add_chat(PRIVATE, "private", username="alice", first_name="Alice")
        server.add_chat(GROUP, "supergroup", title="Herald Lab", admins=[ADMIN])
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(fake.token, base_url=fake.url + "/bot") as b:
        yield b


def _keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data=data)]])


# -- plumbing and error shapes ---------------------------------------------------------------
async def test_get_me_and_request_routing(fake: FakeTelegram, bot: Bot):
    me = await bot.get_me()
    assert me.username == "herald_test_bot" and me.is_bot and me.can_join_groups
    assert me.id == fake.bot_id == bot.id
    assert fake.calls_to("/getMe")[0].path == f"/bot{fake.token}/getMe"

    async with httpx.AsyncClient(base_url=fake.url, timeout=5) as client:
        r = await client.post(f"/bot{OTHER_BOT_TOKEN}/getMe")
        assert r.status_code == 401
        assert r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        r = await client.get("/botnot-a-token/getMe")
        assert r.status_code == 404 and r.json()["description"] == "Not Found"
        r = await client.get(f"/bot{fake.token}/fooBar")
        assert r.status_code == 404 and r.json()["error_code"] == 404
        # JSON body, query string and case-insensitive method names all work
        r = await client.post(
            f"/bot{fake.token}/sendmessage", json={"chat_id": PRIVATE, "text": "j"}
        )
        assert r.json()["ok"] and r.json()["result"]["text"] == "j"
        r = await client.get(
            f"/bot{fake.token}/sendMessage", params={"chat_id": PRIVATE, "text": "q"}
        )
        assert r.json()["result"]["message_id"] == 2
        r = await client.post(f"/bot{fake.token}/sendMessage", data={"chat_id": 5, "text": "x"})
        assert r.status_code == 400
        assert r.json() == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: chat not found",
        }

    with pytest.raises(InvalidToken):
        async with Bot(OTHER_BOT_TOKEN, base_url=fake.url + "/bot"):
            pass
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("fooBar")


# -- sendMessage / HTML / limits --------------------------------------------------------------
async def test_send_message_html(fake: FakeTelegram, bot: Bot):
    html = (
        '<b>New</b> <a href="https://arxiv.org/abs/2401.00001">paper</a> &amp; '
        '<code>x&lt;y</code>\n<pre><code class="language-python">print(1)</code></pre>'
    )
    msg = await bot.send_message(PRIVATE, html, parse_mode=ParseMode.HTML)
    assert msg.text == "New paper & x<y\nprint(1)"
    kinds = [(e.type, e.offset, e.length) for e in msg.entities]
    assert kinds == [
        ("bold", 0, 3),
        ("text_link", 4, 5),
        ("code", 12, 3),
        ("pre", 16, 8),
    ]
    assert msg.entities[1].url == "https://arxiv.org/abs/2401.00001"
    assert msg.entities[3].language == "python"
    assert msg.chat.id == PRIVATE and msg.from_user.id == fake.bot_id

    stored = fake.messages(PRIVATE)[-1]
    assert stored.html == html and stored.parse_mode == "HTML" and stored.text == msg.text
    assert fake.sent_texts(PRIVATE) == [msg.text]
    # message ids increase per chat
    second = await bot.send_message(PRIVATE, "plain, see https://arxiv.org/abs/1 /start")
    assert second.message_id == msg.message_id + 1
    assert [e.type for e in second.entities] == ["url", "bot_command"]


@pytest.mark.parametrize(
    ("html", "description"),
    [
        ("see <foo>x</foo>", 'unsupported start tag "foo" at byte offset 4'),
        ("1 < 2", 'unsupported start tag "" at byte offset 2'),
        ("<b>bold", 'can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("Q&A", "at byte offset 1"),
        ("<span>x</span>", 'tag "span" must have class "tg-spoiler"'),
    ],
)
async def test_bad_html_is_bad_request(bot: Bot, html: str, description: str):
    with pytest.raises(BadRequest) as err:
        await bot.send_message(PRIVATE, html, parse_mode=ParseMode.HTML)
    # PTB strips "Bad Request: " and capitalize()s the rest of Telegram's description
    assert err.value.message.lower().startswith("can't parse entities: ")
    assert description.lower() in err.value.message.lower()


def test_html_parser_details():
    text, entities = parse_telegram_html(
        '<tg-spoiler>s</tg-spoiler><span class="tg-spoiler">p</span>'
        "<blockquote expandable>q</blockquote>&#128512;&#x41;&quot;"
    )
    assert text == 'spq😀A"'
    assert [e["type"] for e in entities] == ["spoiler", "spoiler", "expandable_blockquote"]
    # offsets are UTF-16 code units
    _, entities = parse_telegram_html("😀<b>x</b>")
    assert entities == [{"type": "bold", "offset": 2, "length": 1}]
    # the real server keeps a bare "&"; strict mode (the default) rejects it
    assert parse_telegram_html("AT&T", strict=False)[0] == "AT&T"


async def test_message_length_counts_utf16_after_parsing(fake: FakeTelegram, bot: Bot):
    ok = "😀" * 2048  # 2048 code points, 4096 UTF-16 code units
    assert utf16_len(ok) == 4096
    await bot.send_message(PRIVATE, ok)
    # markup does not count, only the resulting text
    await bot.send_message(PRIVATE, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(PRIVATE, ok + "a")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(PRIVATE, "<b></b>", parse_mode="HTML")
    assert len(fake.messages(PRIVATE)) == 2


async def test_keyboards_and_replies(fake: FakeTelegram, bot: Bot):
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(PRIVATE, "k", reply_markup=_keyboard("x" * 65))
    msg = await bot.send_message(PRIVATE, "k", reply_markup=_keyboard("y" * 64))
    assert msg.reply_markup.inline_keyboard[0][0].callback_data == "y" * 64

    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(PRIVATE, "r", reply_to_message_id=999)
    loose = await bot.send_message(
        PRIVATE, "r", reply_parameters=ReplyParameters(999, allow_sending_without_reply=True)
    )
    assert loose.reply_to_message is None
    reply = await bot.send_message(
        PRIVATE, "r", reply_to_message_id=msg.message_id, disable_web_page_preview=True
    )
    assert reply.reply_to_message.message_id == msg.message_id
    assert fake.messages(PRIVATE)[-1].reply_to == msg.message_id
    assert fake.messages(PRIVATE)[-1].link_preview_options == {"is_disabled": True}


async def test_edit_delete_and_not_modified(fake: FakeTelegram, bot: Bot):
    msg = await bot.send_message(
        PRIVATE, "<b>v1</b>", parse_mode="HTML", reply_markup=_keyboard("a")
    )
    edited = await bot.edit_message_text(
        "<i>v2</i>", PRIVATE, msg.message_id, parse_mode="HTML", reply_markup=_keyboard("a")
    )
    assert edited.text == "v2" and edited.edit_date is not None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<i>v2</i>", PRIVATE, msg.message_id, parse_mode="HTML", reply_markup=_keyboard("a")
        )
    await bot.edit_message_reply_markup(PRIVATE, msg.message_id, reply_markup=_keyboard("b"))
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(PRIVATE, msg.message_id, reply_markup=_keyboard("b"))
    stored = fake.message(PRIVATE, msg.message_id)
    assert stored.text == "v2" and stored.html == "<i>v2</i>" and len(stored.edits) == 2
    assert stored.reply_markup["inline_keyboard"][0][0]["callback_data"] == "b"

    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", PRIVATE, 999)
    assert await bot.delete_message(PRIVATE, msg.message_id) is True
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(PRIVATE, msg.message_id)
    assert fake.sent_texts(PRIVATE) == []


# -- errors: 403, 429, migration --------------------------------------------------------------
async def test_forbidden_and_chat_errors(fake: FakeTelegram, bot: Bot):
    fake.block(PRIVATE)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(PRIVATE, "hi")
    fake.block(GROUP)
    with pytest.raises(Forbidden, match="bot was kicked from the supergroup chat"):
        await bot.send_chat_action(GROUP, "typing")
    fake.unblock(PRIVATE)
    await bot.send_message(PRIVATE, "hi again")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "nobody")

    fake.add_chat(-555, "group", title="Old group")
    fake.migrate(-555, -1005550000)
    with pytest.raises(ChatMigrated) as err:
        await bot.send_message(-555, "x")
    assert err.value.new_chat_id == -1005550000
    await bot.send_message(-1005550000, "x")


async def test_forced_429_surfaces_as_retry_after(fake: FakeTelegram, bot: Bot):
    fake.fail_next(1, status=429, retry_after=3)
    with pytest.raises(RetryAfter) as err:
        await bot.send_message(PRIVATE, "flood")
    assert err.value.retry_after == dtm.timedelta(seconds=3)
    assert fake.rejected_429 == 1
    body = fake.calls_to("/sendMessage")[-1]
    assert body.form()["text"] == "flood"
    await bot.send_message(PRIVATE, "fine now")
    assert fake.sent_texts(PRIVATE) == ["fine now"]

    # other statuses and method-specific failures
    fake.fail_next(1, status=500, method="getMe")
    with pytest.raises(Exception, match="Internal Server Error"):
        await bot.get_me()


async def test_aio_rate_limiter_retries_429_transparently(fake: FakeTelegram):
    fake.fail_next(2, status=429, retry_after=1)
    limiter = AIORateLimiter(max_retries=2)
    async with ExtBot(fake.token, base_url=fake.url + "/bot", rate_limiter=limiter) as bot:
        msg = await bot.send_message(PRIVATE, "eventually")
    assert msg.text == "eventually"
    assert fake.rejected_429 == 2
    assert len(fake.calls_to("/sendMessage")) == 3
    assert fake.sends(PRIVATE)[0].text == "eventually"


async def test_enforced_flood_limits(fake: FakeTelegram, bot: Bot):
    fake.enforce_rate_limits = True
    await bot.send_message(PRIVATE, "one")
    with pytest.raises(RetryAfter):
        await bot.send_message(PRIVATE, "two")  # per-chat 1 msg/s
    fake.global_rate = 3  # "one" plus two more fill the 1-second window
    for chat_id in (11, 12, 13):
        fake.add_chat(chat_id)
    await bot.send_message(11, "n")
    await bot.send_message(12, "n")
    with pytest.raises(RetryAfter):
        await bot.send_message(13, "n")
    assert fake.rejected_429 == 2
    assert [s.text for s in fake.sends()] == ["one", "n", "n"]


# -- getUpdates, polling, Application ---------------------------------------------------------
async def test_get_updates_long_poll_and_offsets(fake: FakeTelegram, bot: Bot):
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, fake.push_message, PRIVATE, PRIVATE, "/start hello")
    t0 = loop.time()
    updates = await bot.get_updates(timeout=5)
    assert loop.time() - t0 > 0.2  # the long poll waited for the message, then returned it
    (update,) = updates
    entity = update.message.entities[0]
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)
    assert update.message.from_user.username == "alice"
    # not confirmed: delivered again; offset confirms
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [update.update_id]
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    assert fake.pending_updates() == []
    # empty long poll waits for its timeout
    t0 = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert loop.time() - t0 >= 0.9
    # limit and negative offsets
    for i in range(3):
        fake.push_message(PRIVATE, PRIVATE, f"m{i}")
    assert [u.message.text for u in await bot.get_updates(limit=2)] == ["m0", "m1"]
    assert [u.message.text for u in await bot.get_updates(offset=-1)] == ["m2"]


async def test_second_poller_terminates_first(fake: FakeTelegram, bot: Bot):
    async with Bot(fake.token, base_url=fake.url + "/bot") as other:
        polls = len(fake.calls_to("/getUpdates"))
        first = asyncio.create_task(bot.get_updates(timeout=5))
        # the first long poll has arrived and is waiting
        await fake.wait_for_async(lambda: len(fake.calls_to("/getUpdates")) > polls)
        assert await other.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await first


@contextlib.asynccontextmanager
async def running_app(fake: FakeTelegram, *handlers) -> AsyncIterator[Application]:
    app = (
        ApplicationBuilder()
        .token(fake.token)
        .base_url(fake.url + "/bot")
        .base_file_url(fake.url + "/file/bot")
        .rate_limiter(AIORateLimiter(max_retries=2))
        .connect_timeout(2)
        .read_timeout(5)
        .write_timeout(5)
        .pool_timeout(2)
        .get_updates_read_timeout(5)
        .build()
    )
    for handler in handlers:
        app.add_handler(handler)
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def test_application_polling_command_and_callback(fake: FakeTelegram):
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(
            f"<b>Hi</b> from {update.effective_chat.type}",
            parse_mode="HTML",
            reply_markup=_keyboard("more:1"),
        )

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer("Loading…")
        await query.edit_message_text(f"pressed {query.data}")

    async with running_app(fake, CommandHandler("start", start), CallbackQueryHandler(button)):
        fake.push_message(PRIVATE, PRIVATE, "/start")
        await fake.wait_for_async(lambda: fake.sent_texts(PRIVATE))
        assert fake.sent_texts(PRIVATE) == ["Hi from private"]

        fake.push_message(GROUP, ADMIN, "/start@herald_test_bot", username="bob")
        fake.push_message(GROUP, ADMIN, "/start@some_other_bot")  # not for us: ignored
        await fake.wait_for_async(lambda: fake.sent_texts(GROUP))

        bot_msg = fake.messages(PRIVATE)[0]
        query_id = fake.push_callback(PRIVATE, PRIVATE, bot_msg.message_id, "more:1")
        await fake.wait_for_async(lambda: fake.sent_texts(PRIVATE) == ["pressed more:1"])
        await fake.wait_for_async(lambda: not fake.pending_updates())  # the other-bot command too

    assert fake.sent_texts(GROUP) == ["Hi from supergroup"]
    (answer,) = fake.answered_callbacks
    assert answer["id"] == query_id and answer["text"] == "Loading…"
    assert fake.pending_updates() == []  # updater.stop() confirmed everything it fetched
    group_update = next(
        u
        for u in fake.pushed_updates.values()
        if u.get("message", {}).get("chat", {}).get("id") == GROUP
    )
    assert group_update["message"]["entities"] == [
        {"type": "bot_command", "offset": 0, "length": len("/start@herald_test_bot")}
    ]


# -- webhooks -----------------------------------------------------------------------------------
async def test_webhook_conflict_and_info(fake: FakeTelegram, bot: Bot):
    assert await bot.set_webhook("https://herald.example.org/tg", secret_token="s3cret")
    with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert info.url == "https://herald.example.org/tg" and info.pending_update_count == 0
    assert fake.webhook["secret_token"] == "s3cret"
    # a non-loopback webhook is never contacted
    fake.push_message(PRIVATE, PRIVATE, "hello")
    await fake.wait_for_async(lambda: fake.webhook_deliveries)
    assert fake.webhook_deliveries[0].status is None
    assert "loopback" in fake.webhook_deliveries[0].error
    assert (await bot.get_webhook_info()).pending_update_count == 1
    # like an unreachable webhook: the update is still there for getUpdates afterwards
    assert await bot.delete_webhook()
    assert [u.message.text for u in await bot.get_updates(timeout=0)] == ["hello"]


async def test_webhook_delivery_with_secret_and_retries(fake: FakeTelegram, bot: Bot):
    received: list[dict] = []
    responses = [500]  # the first delivery fails, the retry succeeds

    async def hook(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != "s3cret":
            return web.Response(status=403)
        if responses:
            return web.Response(status=responses.pop(0))
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/tg", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/tg"
    try:
        await bot.set_webhook(url, secret_token="s3cret", allowed_updates=["message"])
        update_id = fake.push_message(PRIVATE, PRIVATE, "via webhook")
        await fake.wait_for_async(lambda: received)
        assert received[0]["update_id"] == update_id
        assert received[0]["message"]["text"] == "via webhook"
        assert [d.status for d in fake.webhook_deliveries] == [500, 200]
        assert all(d.secret_sent for d in fake.webhook_deliveries)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0
        assert (
            info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        )
        # allowed_updates=["message"]: callback queries are not even created
        assert fake.push_update({"callback_query": {"id": "1"}}) is None

        update = {"update_id": 1, "message": {"message_id": 1}}
        assert await fake.apost_update_raw(url, update, secret="wrong") == 403
        assert await fake.apost_update_raw(url, update, secret=None) == 403
    finally:
        await runner.cleanup()


# -- commands, chats, members, actions --------------------------------------------------------
async def test_commands_chats_and_members(fake: FakeTelegram, bot: Bot):
    cmds = [BotCommand("start", "Subscribe"), BotCommand("digest", "Today's papers")]
    assert await bot.set_my_commands(cmds)
    assert await bot.set_my_commands(cmds[:1], scope=BotCommandScopeAllGroupChats())
    assert await bot.set_my_commands(cmds[1:], scope=BotCommandScopeChat(GROUP), language_code="de")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "digest"]
    assert [c.command for c in await bot.get_my_commands(BotCommandScopeAllGroupChats())] == [
        "start"
    ]
    assert fake.commands({"type": "chat", "chat_id": GROUP}, "de")[0]["command"] == "digest"
    assert await bot.delete_my_commands(BotCommandScopeAllGroupChats())
    assert await bot.get_my_commands(BotCommandScopeAllGroupChats()) == ()
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])

    chat = await bot.get_chat(GROUP)
    assert chat.title == "Herald Lab" and chat.type == "supergroup"
    assert (await bot.get_chat(PRIVATE)).first_name == "Alice"
    admin = await bot.get_chat_member(GROUP, ADMIN)
    assert admin.status == "administrator" and admin.can_delete_messages
    assert (await bot.get_chat_member(GROUP, fake.bot_id)).status == "member"
    assert [m.user.id for m in await bot.get_chat_administrators(GROUP)] == [ADMIN]
    with pytest.raises(BadRequest, match=r"(?i)no administrators in the private chat"):
        await bot.get_chat_administrators(PRIVATE)
    assert await bot.send_chat_action(PRIVATE, "typing")
    assert fake.chat_actions[0][:2] == (PRIVATE, "typing")
    with pytest.raises(BadRequest):
        await bot.send_chat_action(PRIVATE, "dancing")


def test_thread_safe_wait_for_from_sync_code():
    with FakeTelegram() as fake:
        uid = fake.push_message(PRIVATE, PRIVATE, "hi")
        assert fake.wait_for(lambda: fake.pending_updates())[0]["update_id"] == uid
        with pytest.raises(TimeoutError):
            fake.wait_for(lambda: False, timeout=0.05)
