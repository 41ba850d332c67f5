// The feed's web app: sign in as a user, read the home timeline, post,
// like, comment and share with optimistic updates that the server's
// answers and a periodic re-read reconcile, and see new posts arrive live.
import { html, render, useState, useEffect, useRef, useCallback } from './vendor/preact-htm.module.js';

// The API lives beside the app: /app/ under `feed serve`, /feed/app/ under `up`.
const BASE = location.pathname.replace(/\/app\/.*$/, '');
const API = BASE + '/api/v1';
const STORE = 'scalelab.feed.accounts';

function loadAccounts() {
  try { return JSON.parse(localStorage.getItem(STORE)) || []; } catch { return []; }
}
function saveAccounts(list) { localStorage.setItem(STORE, JSON.stringify(list)); }

async function api(method, path, token, body) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.status + ' ' + res.statusText);
  return data;
}

function ago(t) {
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return Math.floor(s) + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return new Date(t).toLocaleDateString();
}

function SignIn({ onSignIn }) {
  const [accounts, setAccounts] = useState(loadAccounts());
  const [handle, setHandle] = useState('');
  const [name, setName] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [created, setCreated] = useState(null);

  const signUp = async (e) => {
    e.preventDefault();
    setError('');
    try {
      const r = await api('POST', '/users', null, { handle: handle.trim(), name: name.trim() });
      const acct = { id: r.user.id, handle: r.user.handle, token: r.token };
      const list = [...accounts.filter((a) => a.id !== acct.id), acct];
      saveAccounts(list);
      setAccounts(list);
      setCreated(acct);
    } catch (err) { setError(err.message); }
  };
  const withToken = async (e) => {
    e.preventDefault();
    setError('');
    try {
      const me = await api('GET', '/me', token.trim());
      const acct = { id: me.id, handle: me.handle, token: token.trim() };
      const list = [...accounts.filter((a) => a.id !== acct.id), acct];
      saveAccounts(list);
      onSignIn(acct);
    } catch (err) { setError(err.message); }
  };
  const forget = (id) => { const list = accounts.filter((a) => a.id !== id); saveAccounts(list); setAccounts(list); };

  return html`
    <header><h1>scalelab feed</h1></header>
    ${created && html`<div class="card" id="created">
      <p>Account <b>@${created.handle}</b> created. Its token, shown once, signs you in anywhere:</p>
      <p class="token">${created.token}</p>
      <button class="primary" id="continue" onClick=${() => onSignIn(created)}>Continue as @${created.handle}</button>
    </div>`}
    ${accounts.length > 0 && html`<div class="card"><h3>Sign in as</h3><ul class="people">
      ${accounts.map((a) => html`<li key=${a.id}><button class="signin" onClick=${() => onSignIn(a)}>@${a.handle}</button>
        <button onClick=${() => forget(a.id)} title="forget this account in this browser">forget</button></li>`)}
    </ul></div>`}
    <form class="card" onSubmit=${signUp}>
      <h3>Create an account</h3>
      <div class="row"><input class="grow" id="handle" placeholder="handle (a-z, 0-9, _)" value=${handle} onInput=${(e) => setHandle(e.target.value)} />
      <input class="grow" id="name" placeholder="name" value=${name} onInput=${(e) => setName(e.target.value)} />
      <button class="primary" id="signup">Create</button></div>
    </form>
    <form class="card" onSubmit=${withToken}>
      <h3>Sign in with a token</h3>
      <div class="row"><input class="grow" placeholder="token" value=${token} onInput=${(e) => setToken(e.target.value)} /><button>Sign in</button></div>
    </form>
    ${error && html`<p class="bad" id="error">${error}</p>`}`;
}

function Post({ item, me, onLike, onShare, onDelete, onComment }) {
  const [open, setOpen] = useState(false);
  const [comments, setComments] = useState(null);
  const [text, setText] = useState('');
  const toggle = async () => {
    setOpen(!open);
    if (!open && comments === null && !item.pending) {
      try { setComments((await api('GET', `/posts/${item.id}/comments`)).comments); } catch { setComments([]); }
    }
  };
  const send = async (e) => {
    e.preventDefault();
    const body = text.trim();
    if (!body) return;
    setText('');
    const temp = { id: 'tmp' + Math.random(), author_id: me.id, body, pending: true };
    setComments([...(comments || []), temp]);
    try {
      const c = await onComment(item, body);
      setComments((cs) => cs.map((x) => (x.id === temp.id ? c : x)));
    } catch (err) {
      setComments((cs) => cs.map((x) => (x.id === temp.id ? { ...x, pending: false, failed: err.message } : x)));
    }
  };
  const cls = 'card post' + (item.pending ? ' pending' : '') + (item.failed ? ' failed' : '');
  return html`<article class=${cls} data-id=${item.id}>
    <div class="row"><span class="who grow">${item.author.name} <span class="muted">@${item.author.handle}</span></span>
      <span class="muted">${item.pending ? 'posting…' : ago(item.created_at)}</span></div>
    ${item.body && html`<div class="body">${item.body}</div>`}
    ${item.shared && html`<div class="shared"><span class="who">${item.shared.author.name}</span> <span class="muted">@${item.shared.author.handle}</span>
      <div class="body">${item.shared.body}</div></div>`}
    ${item.failed && html`<p class="bad">${item.failed}</p>`}
    ${!item.pending && !item.failed && html`<div class="actions">
      <button class=${'like' + (item.liked ? ' on' : '')} onClick=${() => onLike(item)}>♥ <span class="likes">${item.likes}</span></button>
      <button class="comment-toggle" onClick=${toggle}>✎ ${item.comments}</button>
      <button class="share" onClick=${() => onShare(item)}>↻ ${item.shares}</button>
      ${item.author.id === me.id && html`<button class="delete" onClick=${() => onDelete(item)}>delete</button>`}
    </div>`}
    ${open && html`<div class="comments">
      ${(comments || []).map((c) => html`<div class="comment" key=${c.id}><span class="muted">${c.author_id === me.id ? 'you' : '@' + (c.author ? c.author.handle : c.author_id)}:</span> ${c.body}
        ${c.pending ? html` <span class="muted">sending…</span>` : ''}${c.failed ? html` <span class="bad">${c.failed}</span>` : ''}</div>`)}
      <form class="row" onSubmit=${send}><input class="grow comment-input" placeholder="comment" maxlength="500" value=${text} onInput=${(e) => setText(e.target.value)} /><button>Send</button></form>
    </div>`}
  </article>`;
}

// merge puts server items into the list: known IDs take the server's
// state, new ones are inserted in order, pending ones stay on top.
function merge(list, incoming) {
  const byId = new Map(list.map((x) => [x.id, x]));
  for (const it of incoming) byId.set(it.id, { ...byId.get(it.id), ...it, pending: false });
  const all = [...byId.values()];
  const pending = all.filter((x) => x.pending || x.failed);
  const rest = all.filter((x) => !x.pending && !x.failed).sort((a, b) => (BigInt(b.id) > BigInt(a.id) ? 1 : -1));
  return [...pending, ...rest];
}

function People({ me, following, setFollowing }) {
  const [people, setPeople] = useState([]);
  const [find, setFind] = useState('');
  const [error, setError] = useState('');
  useEffect(() => { api('GET', '/users?limit=20').then((r) => setPeople(r.users)).catch(() => {}); }, []);
  const toggle = async (u) => {
    const on = !following.has(u.id);
    const next = new Set(following);
    on ? next.add(u.id) : next.delete(u.id);
    setFollowing(next); // optimistic
    try {
      await api(on ? 'PUT' : 'DELETE', `/users/${me.id}/following/${u.id}`, me.token);
    } catch (err) {
      setError(err.message);
      setFollowing(new Set(following));
    }
  };
  const search = async (e) => {
    e.preventDefault();
    setError('');
    try {
      const u = await api('GET', '/handles/' + encodeURIComponent(find.trim().replace(/^@/, '')));
      setPeople((ps) => [u, ...ps.filter((p) => p.id !== u.id)]);
    } catch (err) { setError(err.message); }
  };
  return html`<div class="card"><h3>People</h3>
    <form class="row" onSubmit=${search}><input class="grow" placeholder="@handle" value=${find} onInput=${(e) => setFind(e.target.value)} /><button>Find</button></form>
    <ul class="people">${people.filter((u) => u.id !== me.id).map((u) => html`<li key=${u.id} data-handle=${u.handle}>
      <span>${u.name} <span class="muted">@${u.handle} · ${u.followers} followers</span></span>
      <button class=${'follow' + (following.has(u.id) ? ' on' : '')} onClick=${() => toggle(u)}>${following.has(u.id) ? 'Following' : 'Follow'}</button></li>`)}</ul>
    ${error && html`<p class="bad">${error}</p>`}</div>`;
}

function Home({ me, onSignOut }) {
  const [items, setItems] = useState([]);
  const [next, setNext] = useState('');
  const [draft, setDraft] = useState('');
  const [error, setError] = useState('');
  const [user, setUser] = useState(null);
  const [following, setFollowing] = useState(new Set());
  const [live, setLive] = useState('connecting');
  const itemsRef = useRef(items);
  itemsRef.current = items;

  const refresh = useCallback(async () => {
    try {
      const page = await api('GET', `/users/${me.id}/timeline?limit=20`, me.token);
      setItems((list) => {
        // Reconcile: the first page is the truth for what it covers; posts
        // in its range the server no longer has (deleted, unfollowed) go.
        const oldest = page.items.length ? BigInt(page.items[page.items.length - 1].id) : 0n;
        const ids = new Set(page.items.map((x) => x.id));
        const kept = list.filter((x) => x.pending || x.failed || ids.has(x.id) || (page.next && BigInt(x.id) < oldest));
        return merge(kept, page.items);
      });
      setNext((n) => n || page.next);
      setError('');
    } catch (err) { setError(err.message); }
  }, [me]);

  useEffect(() => {
    api('GET', '/me', me.token).then(setUser).catch((err) => setError(err.message));
    api('GET', `/users/${me.id}/following`).then((r) => setFollowing(new Set(r.users.map((u) => u.id)))).catch(() => {});
    refresh();
    const t = setInterval(refresh, 20000);
    return () => clearInterval(t);
  }, [me]);

  // Live: new posts of those we follow arrive as server-sent events, read
  // with fetch (an EventSource cannot send the token), reconnecting.
  useEffect(() => {
    let stop = false;
    let ctrl;
    const run = async () => {
      let wait = 500;
      while (!stop) {
        try {
          ctrl = new AbortController();
          const res = await fetch(`${API}/users/${me.id}/events`, { headers: { Authorization: 'Bearer ' + me.token }, signal: ctrl.signal });
          if (!res.ok) throw new Error('live: ' + res.status);
          setLive('live');
          wait = 500;
          const reader = res.body.getReader();
          const dec = new TextDecoder();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const chunk = buf.slice(0, i);
              buf = buf.slice(i + 2);
              const ev = /^event: (.*)$/m.exec(chunk);
              const data = /^data: (.*)$/m.exec(chunk);
              if (!ev || !data) continue;
              const it = JSON.parse(data[1]);
              if (ev[1] === 'post') setItems((list) => merge(list, [{ liked: false, ...it }]));
              if (ev[1] === 'delete') setItems((list) => list.filter((x) => x.id !== it.id));
            }
          }
        } catch (err) {
          if (stop) return;
        }
        setLive('reconnecting');
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 10000);
      }
    };
    run();
    return () => { stop = true; if (ctrl) ctrl.abort(); };
  }, [me]);

  const post = async (body, shareOf) => {
    const temp = { id: 'tmp' + Math.random(), pending: true, body, author: { id: me.id, handle: me.handle, name: user ? user.name : me.handle },
      likes: 0, comments: 0, shares: 0, created_at: new Date().toISOString() };
    setItems((list) => [temp, ...list]);
    try {
      const p = await api('POST', '/posts', me.token, shareOf ? { body, share_of: shareOf } : { body });
      setItems((list) => merge(list.filter((x) => x.id !== temp.id), [{ ...p, author: temp.author, liked: false }]));
      if (shareOf) refresh();
    } catch (err) {
      setItems((list) => list.map((x) => (x.id === temp.id ? { ...x, pending: false, failed: err.message } : x)));
      setTimeout(() => setItems((list) => list.filter((x) => x.id !== temp.id)), 8000);
    }
  };
  const submit = (e) => {
    e.preventDefault();
    const body = draft.trim();
    if (!body) return;
    setDraft('');
    post(body);
  };
  const like = async (item) => {
    const on = !item.liked;
    const patch = (fn) => setItems((list) => list.map((x) => (x.id === item.id ? fn(x) : x)));
    patch((x) => ({ ...x, liked: on, likes: x.likes + (on ? 1 : -1) })); // optimistic
    try {
      const r = await api(on ? 'PUT' : 'DELETE', `/posts/${item.id}/like`, me.token);
      patch((x) => ({ ...x, liked: r.liked, likes: r.likes })); // the server's count
    } catch (err) {
      patch((x) => ({ ...x, liked: item.liked, likes: item.likes }));
      setError(err.message);
    }
  };
  const share = (item) => post('', item.shared ? item.shared.id : item.id);
  const del = async (item) => {
    setItems((list) => list.filter((x) => x.id !== item.id)); // optimistic
    try { await api('DELETE', `/posts/${item.id}`, me.token); } catch (err) { setError(err.message); refresh(); }
  };
  const comment = async (item, body) => {
    const c = await api('POST', `/posts/${item.id}/comments`, me.token, { body });
    setItems((list) => list.map((x) => (x.id === item.id ? { ...x, comments: x.comments + 1 } : x)));
    return c;
  };
  const setMode = async (mode) => {
    try { setUser(await api('PATCH', `/users/${me.id}`, me.token, { mode })); refresh(); } catch (err) { setError(err.message); }
  };
  const more = async () => {
    try {
      const page = await api('GET', `/users/${me.id}/timeline?limit=20&cursor=${next}`, me.token);
      setItems((list) => merge(list, page.items));
      setNext(page.next);
    } catch (err) { setError(err.message); }
  };
  const left = 500 - [...draft].length;

  return html`
    <header><h1>scalelab feed</h1>
      <span id="me">@${me.handle}</span>
      ${user && html`<span class="muted">${user.followers} followers · ${user.following} following</span>`}
      <select id="mode" title="how your timeline is built" value=${user ? user.mode : ''} onChange=${(e) => setMode(e.target.value)}>
        <option value="">mode: deployment's</option><option value="push">push</option><option value="pull">pull</option><option value="hybrid">hybrid</option>
      </select>
      <span class="muted" id="live">${live}</span>
      <button onClick=${onSignOut}>Sign out</button></header>
    <form class="card" onSubmit=${submit}>
      <textarea id="draft" placeholder="What is happening?" value=${draft} onInput=${(e) => setDraft(e.target.value)}></textarea>
      <div class="row"><span class=${'grow muted' + (left < 0 ? ' bad' : '')}>${left}</span>
        <button class="primary" id="post" disabled=${left < 0 || !draft.trim()}>Post</button></div>
    </form>
    ${error && html`<p class="bad" id="error">${error}</p>`}
    <${People} me=${me} following=${following} setFollowing=${(f) => { setFollowing(f); setTimeout(() => { refresh(); api('GET', '/me', me.token).then(setUser).catch(() => {}); }, 300); }} />
    <section id="timeline">
      ${items.length === 0 && html`<p class="muted">Your timeline is empty: follow someone, or post.</p>`}
      ${items.map((it) => html`<${Post} key=${it.id} item=${it} me=${me} onLike=${like} onShare=${share} onDelete=${del} onComment=${comment} />`)}
    </section>
    ${next && html`<button id="more" onClick=${more}>Older posts</button>`}`;
}

function App() {
  const [me, setMe] = useState(null);
  return me ? html`<${Home} me=${me} onSignOut=${() => setMe(null)} />` : html`<${SignIn} onSignIn=${setMe} />`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
