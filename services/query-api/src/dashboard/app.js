// Dashboard of the Plan 63 tracker, served by the query service.
//
// Why a small script and no build step: every figure on the page comes from the query service's
// own JSON endpoints, called with the signed-in user's bearer token, so the page can never show
// what the API would refuse; it only decides what not to ask for (a viewer is not offered the
// audit trail, unit staff are not offered other units' scorecards), never what to reveal.
// Dates are shown as dd/mm/yyyy and times in Asia/Ho_Chi_Minh (UTC+7 all year, no daylight
// saving), computed here rather than by the browser's locale data so every machine shows the same.
'use strict';

(() => {
  const PLAN_DEFAULT = 'kh-63-2025';
  const VN_OFFSET_MS = 7 * 3600 * 1000;
  const TOKEN_KEY = 'kh63.token';
  const CHART_POINTS = 6;

  const STATUS = {
    not_started: 'Chưa thực hiện', in_progress: 'Đang thực hiện',
    awaiting_confirmation: 'Chờ xác nhận', completed: 'Đã hoàn thành',
    suspended: 'Tạm hoãn', reopened: 'Thực hiện lại',
  };
  const STATUS_ORDER = Object.keys(STATUS);
  const STATUS_COLOURS = {
    not_started: '#8a94a3', in_progress: '#2b6cb0', awaiting_confirmation: '#6b46c1',
    completed: '#2f855a', suspended: '#b7791f', reopened: '#c05621',
  };
  const QUALIFIER = {
    overdue: 'Quá hạn', due_soon: 'Sắp quá hạn', within_time: 'Trong hạn', no_deadline: 'Không hạn',
  };
  const COMPLIANCE = {
    on_time: 'Đúng hạn', late: 'Muộn', missing: 'Chưa nộp', pending: 'Chưa đến hạn',
  };
  const REVIEW = { submitted: 'Chờ xem xét', accepted: 'Đã tiếp nhận', returned: 'Trả lại' };
  const ROLE = {
    province_office: 'Văn phòng UBND tỉnh', department_of_finance: 'Sở Tài chính',
    unit_staff: 'Cán bộ đơn vị', auditor: 'Kiểm toán', viewer: 'Người xem',
  };
  const ASSIGNMENT_ROLE = { lead: 'Chủ trì', coordinator: 'Phối hợp' };
  const AXIS = { recorded: 'đã ghi nhận', effective: 'có hiệu lực' };
  const PROJECTION = { core: 'dữ liệu theo dõi', audit: 'nhật ký kiểm toán' };
  const projection = (name) => PROJECTION[name] || name;
  const AGGREGATES = ['unit', 'group', 'plan', 'item', 'task', 'report', 'ledger', 'access', 'quarantine'];

  // ── small helpers ─────────────────────────────────────────────────────────────────────────

  /** Builds an element; strings become text nodes, so data never turns into markup. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
  }

  /** Replaces an element's children, skipping the absent ones (replaceChildren would print "null"). */
  function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  /** The wall clock in Việt Nam at an instant, as UTC fields of a shifted Date. */
  const vn = (instant) => new Date(new Date(instant).getTime() + VN_OFFSET_MS);

  function fmtDate(value) {
    if (!value) return '—';
    if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
      const [y, m, d] = value.split('-');
      return `${d}/${m}/${y}`;
    }
    const t = vn(value);
    return `${pad(t.getUTCDate())}/${pad(t.getUTCMonth() + 1)}/${t.getUTCFullYear()}`;
  }

  function fmtTime(value) {
    if (!value) return '—';
    const t = vn(value);
    return `${fmtDate(value)} ${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}`;
  }

  // Instants are typed as `dd/mm/yyyy hh:mm:ss` in Việt Nam time: a datetime-local input would
  // show the browser's own locale's order (mm/dd/yyyy on many machines).
  const TIME_FORMAT = 'dd/mm/yyyy hh:mm:ss';
  const TIME_PATTERN = /^\s*(\d{1,2})\/(\d{1,2})\/(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$/;

  /** An instant as typed in a time field. */
  const toInput = (ms) => fmtTime(new Date(ms).toISOString());

  /** A time field's text as RFC 3339 with the +07:00 offset; null when empty, undefined when invalid. */
  function fromInput(value) {
    if (!value || !value.trim()) return null;
    const m = TIME_PATTERN.exec(value);
    if (!m) return undefined;
    const [, d, mo, y, hh = '0', mi = '0', ss = '0'] = m;
    const text = `${y}-${pad(mo)}-${pad(d)}T${pad(hh)}:${pad(mi)}:${pad(ss)}+07:00`;
    const check = vn(Date.parse(text));
    if (Number.isNaN(check.getTime()) || check.getUTCDate() !== Number(d) || check.getUTCMonth() + 1 !== Number(mo)) return undefined;
    return text;
  }

  function timeField(id, ms, attrs) {
    return h('input', {
      type: 'text', id, name: id, inputmode: 'numeric', autocomplete: 'off', placeholder: TIME_FORMAT,
      value: ms === null ? '' : toInput(ms), 'aria-describedby': 'time-format-hint', ...attrs,
    });
  }

  /** Reads a time field, marking it invalid (and saying why) when its text is not an instant. */
  function readTime(input) {
    const value = fromInput(input.value);
    input.setCustomValidity(value === undefined ? `Nhập thời điểm dạng ${TIME_FORMAT}, giờ Việt Nam.` : '');
    if (value === undefined) input.reportValidity();
    return value;
  }

  const badge = (kind, value, labels) =>
    h('span', { class: `badge ${kind}-${value || 'none'}` }, labels[value] || value || '—');
  const statusBadge = (s) => badge('s', s, STATUS);
  const qualifierBadge = (q) => badge('q', q, QUALIFIER);
  const complianceBadge = (c) => badge('c', c, COMPLIANCE);
  const reviewBadge = (r) => badge('r', r, REVIEW);

  function table(caption, headers, rows, attrs) {
    return h('div', { class: 'table-wrap' },
      h('table', attrs || {},
        caption ? h('caption', {}, caption) : null,
        h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', class: x.num ? 'num' : null }, x.label || x)))),
        h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length }, 'Không có dữ liệu.')))));
  }

  const quarterLabel = (year, quarter) => `Quý ${quarter}/${year}`;
  const quarterOf = (ms) => { const t = vn(ms); return { year: t.getUTCFullYear(), quarter: Math.floor(t.getUTCMonth() / 3) + 1 }; };

  function quartersBetween(from, to) {
    const out = [];
    let { year, quarter } = from;
    while (year < to.year || (year === to.year && quarter <= to.quarter)) {
      out.push({ year, quarter });
      quarter += 1;
      if (quarter > 4) { quarter = 1; year += 1; }
    }
    return out;
  }

  // ── session, API and freshness ────────────────────────────────────────────────────────────

  const session = { token: null, me: null };
  const names = new Map(); // unit and group id → name, learnt from every answer that names them
  const fresh = { checkpoint: null, stalled: false, lastRecorded: null };
  let planCache = null;

  class ApiError extends Error {
    constructor(status, problem, message) {
      super(message || (problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  function query(params) {
    const parts = [];
    for (const [k, v] of Object.entries(params || {})) {
      if (v === null || v === undefined || v === '') continue;
      parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
    }
    return parts.length ? `?${parts.join('&')}` : '';
  }

  async function request(path, params) {
    let response;
    try {
      response = await fetch(path + query(params), {
        headers: { Authorization: `Bearer ${session.token}`, Accept: 'application/json' },
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, null, 'Không kết nối được dịch vụ truy vấn.');
    }
    noteFreshness(response.headers);
    if (!response.ok) {
      const problem = await response.json().catch(() => null);
      throw new ApiError(response.status, problem);
    }
    return response;
  }

  const api = async (path, params) => (await request(path, params)).json();

  /** A first member `projection=value` of a freshness header. */
  function member(headers, name) {
    const value = headers.get(name);
    if (!value) return null;
    const eq = value.indexOf('=');
    return eq < 0 ? value : value.slice(eq + 1).split(',')[0];
  }

  function noteFreshness(headers) {
    const checkpoint = member(headers, 'X-Read-Model-Checkpoint');
    if (checkpoint === null) return;
    fresh.checkpoint = checkpoint;
    fresh.stalled = member(headers, 'X-Read-Model-Stalled') === 'true';
    fresh.lastRecorded = member(headers, 'X-Read-Model-Last-Recorded-At');
  }

  function learnName(id, name) {
    if (id && name) names.set(id, name);
  }
  const nameOf = (id) => names.get(id) || id;

  const roles = () => (session.me ? session.me.roles : []);
  const holds = (...wanted) => roles().some((r) => wanted.includes(r));
  const can = {
    seeAllUnits: () => holds('province_office', 'department_of_finance', 'auditor'),
    audit: () => holds('province_office', 'auditor'),
    verify: () => holds('auditor'),
    exports: () => holds('province_office', 'department_of_finance', 'auditor', 'viewer'),
    staffUnit: () => (holds('unit_staff') && session.me.unit) || null,
    scorecard: (unit) => can.seeAllUnits() || (unit !== undefined && unit === can.staffUnit()),
    scorecards: () => can.seeAllUnits() || Boolean(can.staffUnit()),
  };

  async function plan() {
    if (!planCache) {
      const overview = await api(`/v1/plans/${PLAN_DEFAULT}/overview`);
      learnOverviewNames(overview.items);
      planCache = overview;
    }
    return planCache;
  }

  function learnOverviewNames(items) {
    for (const item of items) {
      for (const a of [...item.leads, ...item.coordinators]) learnName(a.id, a.name);
    }
  }

  // ── routing and the time control ──────────────────────────────────────────────────────────

  /** The page, its argument and the instant shown, all in the location's hash. */
  function route() {
    const hash = location.hash.replace(/^#\/?/, '');
    const [path, search] = hash.split('?');
    const [page, ...rest] = path.split('/');
    const params = new URLSearchParams(search || '');
    const axis = params.get('axis') === 'effective' ? 'effective' : 'recorded';
    return { page: page || 'tong-quan', arg: rest.map(decodeURIComponent).join('/'), at: params.get('at'), axis, params };
  }

  /** A link to a page that keeps the instant and the axis being looked at. */
  function href(page, arg, extra) {
    const current = route();
    const params = new URLSearchParams();
    if (current.at) params.set('at', current.at);
    if (current.axis === 'effective') params.set('axis', 'effective');
    for (const [k, v] of Object.entries(extra || {})) {
      if (v === null || v === undefined || v === '') params.delete(k); else params.set(k, v);
    }
    const search = params.toString();
    return `#/${page}${arg ? `/${encodeURIComponent(arg)}` : ''}${search ? `?${search}` : ''}`;
  }

  function go(page, arg, extra) {
    location.hash = href(page, arg, extra);
  }

  const asOf = (r) => ({ at: r.at, axis: r.axis });

  /** The time control of route `r`, drawn only while `current()` (a later route may have come). */
  async function renderTime(r, current) {
    const box = document.getElementById('time');
    box.hidden = false;
    const overview = await plan().catch(() => null);
    if (!current()) return;
    const start = Date.parse(`${overview ? overview.plan.issued_on : '2025-01-01'}T00:00:00+07:00`);
    const now = Date.now();
    const shown = r.at ? Date.parse(r.at) : now;
    const picker = timeField('time-at', shown);
    const slider = h('input', {
      type: 'range', id: 'time-slider', min: start, max: now, step: Math.max(1, Math.round((now - start) / 1000)),
      value: Math.min(Math.max(shown, start), now), 'aria-describedby': 'time-slider-ends',
    });
    slider.addEventListener('input', () => { picker.value = toInput(Number(slider.value)); });
    slider.addEventListener('change', () => apply());
    const axisInputs = Object.entries(AXIS).map(([value, label]) => h('label', {},
      h('input', { type: 'radio', name: 'axis', value, checked: r.axis === value, onchange: () => apply() }), ` ${label[0].toUpperCase()}${label.slice(1)}`));
    function apply() {
      const value = readTime(picker);
      if (value === undefined) return;
      const axis = box.querySelector('input[name="axis"]:checked').value;
      const at = value && Date.parse(value) < Date.now() - 1000 ? value : null;
      go(r.page, r.arg, { at, axis: axis === 'effective' ? 'effective' : null });
    }
    fill(box, 
      h('div', {}, h('label', { for: 'time-at' }, 'Thời điểm xem (giờ Việt Nam)'), h('br'), picker,
        h('span', { id: 'time-format-hint', class: 'visually-hidden' }, `Dạng ${TIME_FORMAT}`)),
      h('div', { class: 'slider' },
        h('label', { for: 'time-slider' }, 'Dòng thời gian của kế hoạch'), slider,
        h('div', { class: 'slider-ends', id: 'time-slider-ends' }, h('span', {}, fmtDate(start)), h('span', {}, 'hiện tại'))),
      h('fieldset', {}, h('legend', {}, 'Trục thời gian'), axisInputs),
      h('button', { type: 'button', id: 'time-apply', onclick: apply }, 'Xem tại thời điểm này'),
      h('button', { type: 'button', class: 'secondary', id: 'time-now', onclick: () => go(r.page, r.arg, { at: null }) }, 'Về hiện tại'));
  }

  function renderPastBanner(r) {
    if (!r.at) return null;
    const meaning = r.axis === 'effective'
      ? 'những gì đúng vào lúc đó, kể cả điều được ghi nhận muộn hơn với hiệu lực hồi tố'
      : 'những gì hệ thống đã ghi nhận đến lúc đó';
    return h('div', { class: 'banner-past', role: 'status', id: 'past-banner' },
      h('span', {}, `Đang xem dữ liệu quá khứ: ${fmtTime(r.at)} (trục ${AXIS[r.axis]}: ${meaning}).`),
      h('button', { type: 'button', class: 'secondary', onclick: () => go(r.page, r.arg, { at: null }) }, 'Quay về hiện tại'));
  }

  /** Readiness of the read model: says so when it is behind or stopped, never blocks the page. */
  async function readiness() {
    let body;
    let status;
    try {
      const response = await fetch('/readyz', { cache: 'no-store' });
      status = response.status;
      body = await response.json().catch(() => null);
    } catch (e) {
      return h('div', { class: 'banner-down', role: 'alert', id: 'down-banner' }, 'Không kết nối được dịch vụ truy vấn. Dữ liệu đang hiển thị có thể đã cũ; hãy thử tải lại trang sau ít phút.');
    }
    if (status === 200 && body) {
      const lagging = (body.projections || []).filter((p) => p.lag_events > 0);
      if (!lagging.length) return null;
      return h('div', { class: 'banner-behind', role: 'status', id: 'behind-banner' },
        `Dữ liệu đang được cập nhật: ${lagging.map((p) => `${projection(p.projection)} chậm ${p.lag_events} sự kiện (mốc #${p.checkpoint})`).join('; ')}. Số liệu dưới đây là tại mốc đó.`);
    }
    if (body && body.type === 'urn:kh63:problem:not-ready') {
      const parts = (body.projections || []).filter((p) => !p.ready)
        .map((p) => `${projection(p.projection)} dừng ở mốc #${p.checkpoint}${p.lag_events ? `, chậm ${p.lag_events} sự kiện` : ''}${p.stalled ? ' (đã dừng, chờ khắc phục)' : ''}`);
      return h('div', { class: 'banner-behind', role: 'alert', id: 'behind-banner' },
        `Dữ liệu chưa theo kịp nhật ký sự kiện: ${parts.join('; ') || body.detail}. Số liệu dưới đây là tại mốc đó.`);
    }
    return h('div', { class: 'banner-down', role: 'alert', id: 'down-banner' },
      `Cơ sở dữ liệu của dịch vụ truy vấn đang không phản hồi (${status}). Một số số liệu có thể không tải được.`);
  }

  function renderFooter() {
    const footer = document.getElementById('footer');
    if (fresh.checkpoint === null) { fill(footer, ); return; }
    fill(footer, h('span', { id: 'freshness' },
      `Dữ liệu đọc tại mốc sự kiện #${fresh.checkpoint}`,
      fresh.lastRecorded ? `, sự kiện mới nhất ghi nhận lúc ${fmtTime(fresh.lastRecorded)}` : '',
      '. Giờ Việt Nam (UTC+7).'));
    if (fresh.stalled) {
      document.getElementById('alerts').append(h('div', { class: 'banner-behind', role: 'alert', id: 'stalled-banner' },
        `Bộ chiếu dữ liệu đã dừng ở mốc #${fresh.checkpoint}: số liệu đứng yên tại mốc này cho đến khi sự cố được khắc phục.`));
    }
  }

  function renderHeader(r) {
    const nav = document.getElementById('nav');
    const who = document.getElementById('who');
    if (!session.me) { fill(nav); fill(who); return; }
    const pages = [['tong-quan', 'Tổng quan'], ['tuan-thu', 'Tuân thủ báo cáo']];
    if (can.scorecards()) pages.push(['don-vi', 'Đơn vị']);
    if (can.audit()) pages.push(['kiem-toan', 'Nhật ký kiểm toán']);
    const current = r.page === 'muc' ? 'tong-quan' : r.page;
    fill(nav, ...pages.map(([page, label]) =>
      h('a', { href: href(page), 'aria-current': page === current ? 'page' : null }, label)));
    const me = session.me;
    fill(who,
      h('span', { id: 'who-user' }, h('strong', {}, me.user)),
      h('span', { id: 'who-roles' }, me.roles.map((x) => ROLE[x] || x).join(' + ')),
      me.unit ? h('span', { id: 'who-unit' }, `Đơn vị: ${nameOf(me.unit)}`) : null,
      h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Đăng xuất'));
  }

  // ── pages ─────────────────────────────────────────────────────────────────────────────────

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    session.token = null;
    session.me = null;
    planCache = null;
    location.hash = '#/dang-nhap';
  }

  async function signIn(token) {
    session.token = token.trim();
    session.me = await api('/v1/me');
    sessionStorage.setItem(TOKEN_KEY, session.token);
  }

  function pageSignIn(main, message) {
    document.getElementById('time').hidden = true;
    const area = h('textarea', { id: 'token', name: 'token', required: true, autocomplete: 'off', spellcheck: 'false' });
    const status = h('div', { role: 'alert', id: 'signin-status' }, message ? h('p', { class: 'error' }, message) : null);
    const form = h('form', { class: 'card signin' },
      h('h1', {}, 'Đăng nhập'),
      h('p', {}, 'Dán mã truy cập (bearer token) do quản trị hệ thống cấp, hoặc mở đường dẫn có sẵn mã. Mã chỉ được giữ trong thẻ trình duyệt này và mất khi đóng thẻ.'),
      h('label', { for: 'token' }, 'Mã truy cập'), area, status,
      h('p', {}, h('button', { type: 'submit' }, 'Đăng nhập')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await signIn(area.value);
        location.hash = '#/tong-quan';
      } catch (e) {
        session.token = null;
        fill(status, h('p', { class: 'error' }, e.status === 401 ? 'Mã truy cập không hợp lệ hoặc đã hết hạn.' : `Không đăng nhập được: ${e.message}`));
      }
    });
    fill(main, form);
    area.focus();
  }

  // Overview ───────────────────────────────────────────────────────────────────────────────

  /** Items of the live overview or of an as-of plan view, in one shape. */
  function overviewModel(live, past) {
    if (!past) {
      return {
        plan: live.plan,
        items: live.items.map((i) => ({
          item_id: i.item_id, ordinal: i.ordinal, title: i.title, status: i.status, due_on: i.due_on,
          qualifier: i.deadline_qualifier, leads: i.leads, coordinators: i.coordinators,
        })),
      };
    }
    const view = past;
    const planRow = view.plans.find((p) => p.plan_id === PLAN_DEFAULT);
    const assignees = (list) => list.map((a) => {
      const [kind, id] = Object.entries(a)[0];
      return { type: kind, id, name: nameOf(id) };
    });
    return {
      plan: planRow ? { ...live.plan, ...planRow } : live.plan,
      exists: Boolean(planRow),
      items: view.items.filter((i) => i.plan_id === PLAN_DEFAULT).map((i) => ({
        item_id: i.item_id, ordinal: i.ordinal, title: i.title, status: i.status, due_on: i.due_on,
        qualifier: i.deadline_qualifier, leads: assignees(i.lead_assignees), coordinators: assignees(i.coordinator_assignees),
      })),
    };
  }

  function countsOf(items) {
    const byStatus = Object.fromEntries(STATUS_ORDER.map((s) => [s, 0]));
    const byQualifier = Object.fromEntries(Object.keys(QUALIFIER).map((q) => [q, 0]));
    for (const item of items) {
      byStatus[item.status] = (byStatus[item.status] || 0) + 1;
      byQualifier[item.qualifier] = (byQualifier[item.qualifier] || 0) + 1;
    }
    return { byStatus, byQualifier };
  }

  const assigneeList = (list) => (list.length ? list.map((a, i) => [i ? '; ' : '', a.name]) : '—');

  async function pageOverview(main, r) {
    const live = await plan();
    const past = r.at ? await api('/v1/as-of/plan', asOf(r)) : null;
    const model = overviewModel(live, past);
    const counts = countsOf(model.items);
    const rows = model.items.map((i) => h('tr', { 'data-item': i.item_id },
      h('td', { class: 'num' }, i.ordinal),
      h('td', {}, h('a', { href: href('muc', i.item_id) }, i.title)),
      h('td', { 'data-col': 'status' }, statusBadge(i.status)),
      h('td', {}, fmtDate(i.due_on)),
      h('td', { 'data-col': 'qualifier' }, qualifierBadge(i.qualifier)),
      h('td', {}, assigneeList(i.leads)),
      h('td', {}, assigneeList(i.coordinators))));
    const countCard = (id, value, label, cls) => h('div', { class: 'count', 'data-count': id },
      h('strong', {}, value), h('span', { class: cls ? `badge ${cls}` : null }, label));
    fill(main, 
      h('h1', { class: 'print-title' }, 'Tổng quan Kế hoạch 63/KH-UBND'),
      h('div', { class: 'card' },
        h('h1', {}, `Kế hoạch số ${model.plan.code}: ${model.plan.title}`),
        h('p', { class: 'meta' }, `${model.plan.issuer} ban hành ngày ${fmtDate(model.plan.issued_on)}.`,
          r.at && !model.exists ? ' Tại thời điểm này kế hoạch chưa có trong hệ thống.' : '')),
      h('h2', {}, 'Số lượng nội dung theo trạng thái và tình trạng hạn'),
      h('div', { class: 'counts', id: 'counts' },
        countCard('items', model.items.length, 'Tổng số nội dung'),
        STATUS_ORDER.map((s) => countCard(`status-${s}`, counts.byStatus[s], STATUS[s], `s-${s}`)),
        Object.keys(QUALIFIER).map((q) => countCard(`qualifier-${q}`, counts.byQualifier[q], QUALIFIER[q], `q-${q}`))),
      h('h2', {}, `Các nội dung (${model.items.length})`),
      table(null, [{ label: 'STT', num: true }, 'Nội dung hạn chế, yếu kém', 'Trạng thái', 'Hạn', 'Tình trạng hạn', 'Đơn vị chủ trì', 'Đơn vị phối hợp'], rows, { id: 'items' }),
      h('h2', {}, 'Trạng thái theo thời gian'),
      h('div', { class: 'card chart', id: 'chart' }, h('p', { class: 'meta' }, 'Đang tải biểu đồ…')),
      diffForm(r, 'plan'));
    return async () => renderChart(r, live.plan.issued_on);
  }

  /** Counts by status at a few instants from the plan's issue to the instant shown, as bars. */
  async function renderChart(r, issuedOn) {
    const box = document.getElementById('chart');
    if (!box) return;
    const start = Date.parse(`${issuedOn}T00:00:00+07:00`);
    const end = r.at ? Date.parse(r.at) : Date.now();
    const instants = Array.from({ length: CHART_POINTS }, (_, k) => new Date(start + ((end - start) * (k + 1)) / CHART_POINTS));
    let views;
    try {
      views = await Promise.all(instants.map((t) => api('/v1/as-of/plan', { at: t.toISOString(), axis: r.axis })));
    } catch (e) {
      fill(box, h('p', { class: 'error' }, `Không tải được biểu đồ: ${e.message}`));
      return;
    }
    const series = views.map((v, k) => ({
      at: instants[k],
      counts: countsOf(v.items.filter((i) => i.plan_id === PLAN_DEFAULT).map((i) => ({ status: i.status }))).byStatus,
      total: v.items.filter((i) => i.plan_id === PLAN_DEFAULT).length,
    }));
    const width = 720; const rowH = 26; const left = 96; const barW = width - left - 40;
    const max = Math.max(1, ...series.map((s) => s.total));
    const bars = series.map((s, k) => {
      let x = left;
      const y = 8 + k * rowH;
      const parts = STATUS_ORDER.filter((st) => s.counts[st]).map((st) => {
        const w = (s.counts[st] / max) * barW;
        const rect = svg('rect', { x, y, width: w, height: rowH - 8, fill: STATUS_COLOURS[st] },
          svg('title', {}, `${fmtDate(s.at)}: ${STATUS[st]} ${s.counts[st]}`));
        x += w;
        return rect;
      });
      return [svg('text', { x: 0, y: y + rowH / 2 }, fmtDate(s.at)), parts,
        svg('text', { x: x + 4, y: y + rowH / 2 }, String(s.total))];
    });
    const height = 12 + series.length * rowH;
    fill(box, 
      svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': 'chart-title chart-desc' },
        svg('title', { id: 'chart-title' }, 'Số nội dung theo trạng thái qua thời gian'),
        svg('desc', { id: 'chart-desc' }, series.map((s) => `${fmtDate(s.at)}: ${STATUS_ORDER.filter((st) => s.counts[st]).map((st) => `${STATUS[st]} ${s.counts[st]}`).join(', ') || 'chưa có nội dung'}`).join('. ')),
        bars),
      h('div', { class: 'legend' }, STATUS_ORDER.map((st) => h('span', {},
        svg('svg', { width: 12, height: 12, 'aria-hidden': 'true' }, svg('rect', { width: 12, height: 12, fill: STATUS_COLOURS[st] })), ` ${STATUS[st]}`))),
      h('p', { class: 'meta' }, `Trục ${AXIS[r.axis]}; mỗi thanh là trạng thái các nội dung tại ngày ghi bên trái.`));
  }

  // Diff between two instants ────────────────────────────────────────────────────────────────

  function diffForm(r, kind, itemId) {
    const now = Date.now();
    const to = r.at ? Date.parse(r.at) : now;
    const fromField = timeField('diff-from', to - 30 * 24 * 3600 * 1000, { required: true });
    const toField = timeField('diff-to', to, { required: true });
    const out = h('div', { id: 'diff-result', 'aria-live': 'polite' });
    const form = h('form', { class: 'card no-print', id: 'diff' },
      h('h2', {}, 'So sánh hai thời điểm'),
      h('p', { class: 'meta' }, `Theo trục ${AXIS[r.axis]}, đúng những gì vai trò của bạn được xem tại mỗi thời điểm.`),
      h('div', { class: 'form-row' },
        h('div', {}, h('label', { for: 'diff-from' }, 'Từ thời điểm'), fromField),
        h('div', {}, h('label', { for: 'diff-to' }, 'Đến thời điểm'), toField),
        h('div', {}, h('button', { type: 'submit' }, 'So sánh'))),
      out);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const from = readTime(fromField);
      const until = readTime(toField);
      if (!from || !until) return;
      fill(out, h('p', { class: 'meta' }, 'Đang so sánh…'));
      try {
        const fetchAt = async (t) => {
          const path = kind === 'plan' ? '/v1/as-of/plan' : `/v1/as-of/items/${encodeURIComponent(itemId)}`;
          try {
            return await api(path, { at: t, axis: r.axis });
          } catch (e) {
            if (e.status === 404) return null; // the item did not exist yet: everything is new
            throw e;
          }
        };
        const [before, after] = await Promise.all([fetchAt(from), fetchAt(until)]);
        const changes = kind === 'plan' ? planChanges(before, after) : itemChanges(before, after);
        fill(out, table(`Thay đổi từ ${fmtTime(from)} đến ${fmtTime(until)}: ${changes.length}`,
          ['Đối tượng', 'Thuộc tính', 'Trước', 'Sau'],
          changes.map((c) => h('tr', {}, h('td', {}, c.what), h('td', {}, c.field),
            h('td', { class: 'diff-before' }, c.before), h('td', { class: 'diff-after' }, c.after)))));
      } catch (e) {
        fill(out, problemView(e));
      }
    });
    return form;
  }

  const show = {
    status: (v) => STATUS[v] || v,
    deadline_qualifier: (v) => QUALIFIER[v] || v,
    due_on: fmtDate,
    report_status: (v) => REVIEW[v] || v,
  };

  function text(value) {
    if (value === null || value === undefined || value === '') return '—';
    if (Array.isArray(value)) return value.map((x) => (typeof x === 'object' ? Object.values(x).map(nameOf).join('') : nameOf(x))).join('; ') || '—';
    if (typeof value === 'boolean') return value ? 'có' : 'không';
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  }

  const FIELD = {
    status: 'Trạng thái', due_on: 'Hạn', deadline_qualifier: 'Tình trạng hạn', lead_assignees: 'Đơn vị chủ trì',
    coordinator_assignees: 'Đơn vị phối hợp', cancelled: 'Đã hủy', report_status: 'Xem xét', progress: 'Tiến độ',
    reported_status: 'Trạng thái báo cáo', valid_at: 'Đang hiệu lực', compliance: 'Tuân thủ', title: 'Tên',
  };

  /** Field-by-field changes between two rows of the same thing. */
  function rowChanges(what, before, after, fields) {
    const out = [];
    if (!before && !after) return out;
    if (!before) return [{ what, field: 'Mới xuất hiện', before: '—', after: fields.filter((f) => f in after).map((f) => `${FIELD[f] || f}: ${fmtField(f, after[f])}`).join('; ') }];
    if (!after) return [{ what, field: 'Không còn', before: 'có', after: '—' }];
    for (const f of fields) {
      if (JSON.stringify(before[f]) !== JSON.stringify(after[f])) {
        out.push({ what, field: FIELD[f] || f, before: fmtField(f, before[f]), after: fmtField(f, after[f]) });
      }
    }
    return out;
  }

  function fmtField(f, v) {
    const fmt = show[f];
    return fmt ? (v === null || v === undefined ? '—' : fmt(v)) : text(v);
  }

  function listChanges(label, before, after, key, fields) {
    const index = (list) => new Map((list || []).map((x) => [key(x), x]));
    const b = index(before);
    const a = index(after);
    const keys = [...new Set([...b.keys(), ...a.keys()])];
    return keys.flatMap((k) => rowChanges(`${label} ${k}`, b.get(k), a.get(k), fields));
  }

  const itemKey = (i) => `${i.ordinal}`;
  const itemFields = ['status', 'due_on', 'deadline_qualifier', 'lead_assignees', 'coordinator_assignees'];
  const taskFields = ['status', 'due_on', 'deadline_qualifier', 'cancelled'];
  const quarterKey = (q) => (q ? `Q${q.quarter}/${q.year}` : '');

  function planChanges(before, after) {
    const v = (x) => x || { items: [], tasks: [], reports: [], compliance: [] };
    const [b, a] = [v(before), v(after)];
    return [
      ...listChanges('Nội dung', b.items, a.items, itemKey, itemFields),
      ...listChanges('Nhiệm vụ', b.tasks, a.tasks, (t) => t.task_id, taskFields),
      ...listChanges('Báo cáo', b.reports, a.reports, (x) => `${nameOf(x.unit_id)} ${quarterKey(x.quarter)}`, ['status']),
    ];
  }

  function itemChanges(before, after) {
    const v = (x) => x;
    const [b, a] = [v(before), v(after)];
    const assignmentKey = (x) => `${ASSIGNMENT_ROLE[x.role]} ${nameOf(Object.values(x.assignee)[0])} từ ${fmtDate(x.valid_from)}`;
    return [
      ...rowChanges('Nội dung', b && b.item, a && a.item, itemFields),
      ...listChanges('Phân công', b && b.assignments, a && a.assignments, assignmentKey, ['valid_at', 'valid_until']),
      ...listChanges('Nhiệm vụ', b && b.tasks, a && a.tasks, (t) => t.task_id, taskFields),
      ...listChanges('Báo cáo', b && b.report_lines, a && a.report_lines, (x) => `${nameOf(x.unit_id)} ${quarterKey(x.quarter)}`, ['progress', 'reported_status', 'report_status']),
    ];
  }

  // Item detail ─────────────────────────────────────────────────────────────────────────────

  async function pageItem(main, r) {
    const id = r.arg;
    // The detail answers the latest report line per unit; the as-of view (now, or the instant
    // shown) holds every quarter's, so both are read.
    const notFound = (e) => { if (e.status === 404) return null; throw e; };
    const [live, snapshot] = await Promise.all([
      api(`/v1/items/${encodeURIComponent(id)}`),
      api(`/v1/as-of/items/${encodeURIComponent(id)}`, r.at ? asOf(r) : {}).catch(notFound)]);
    for (const a of live.assignments) learnName(a.assignee_id, a.assignee_name);
    for (const u of live.responsible_units) learnName(u.unit_id, u.unit_name);
    for (const t of live.tasks || []) learnName(t.unit_id, t.unit_name);
    for (const l of live.report_lines || []) learnName(l.unit_id, l.unit_name);
    const past = r.at ? snapshot : null;
    const item = live.item;
    const atMs = r.at ? Date.parse(r.at) : null;
    const known = (instant) => atMs === null || Date.parse(instant) <= atMs;
    const shown = past ? past.item : r.at ? null : item;
    const head = h('div', { class: 'card' },
      h('p', { class: 'meta' }, h('a', { href: href('tong-quan') }, 'Tổng quan'), ' › Nội dung số ', item.ordinal,
        // Every change to the item (assignments, deadlines, reports…) with its actor and both times.
        can.audit() ? [' · ', h('a', { href: href('kiem-toan', '', { aggregate_type: 'item', aggregate_id: id }), id: 'item-audit' }, 'Toàn bộ nhật ký thay đổi của nội dung này')] : null),
      h('h1', {}, `${item.ordinal}. ${item.title}`),
      shown
        ? h('p', { id: 'item-state' }, 'Trạng thái: ', statusBadge(shown.status), ' · Hạn: ', fmtDate(shown.due_on), ' · ', qualifierBadge(shown.deadline_qualifier),
          !past && item.completed_at ? ` · Hoàn thành lúc ${fmtTime(item.completed_at)}` : '')
        : h('p', { class: 'notice', id: 'item-state' }, 'Nội dung này chưa có trong hệ thống tại thời điểm đang xem.'),
      item.sector ? h('p', {}, h('strong', {}, 'Lĩnh vực: '), item.sector) : null,
      item.causes_objective ? h('p', {}, h('strong', {}, 'Nguyên nhân khách quan: '), item.causes_objective) : null,
      item.causes_subjective ? h('p', {}, h('strong', {}, 'Nguyên nhân chủ quan: '), item.causes_subjective) : null,
      item.remedies ? h('p', {}, h('strong', {}, 'Giải pháp khắc phục: '), item.remedies) : null);

    const unitLink = (id, name) => (can.scorecard(id) ? h('a', { href: href('don-vi', id) }, name) : name);

    // Assignments: every one known at the instant, with its validity.
    const assignments = past
      ? past.assignments.map((a) => {
        const [kind, aid] = Object.entries(a.assignee)[0];
        return { role: a.role, type: kind, id: aid, name: nameOf(aid), from: a.valid_from, until: a.valid_until, active: a.valid_at };
      })
      : r.at ? [] : live.assignments.map((a) => ({ role: a.role, type: a.assignee_type, id: a.assignee_id, name: a.assignee_name, from: a.valid_from, until: a.valid_until, active: a.active, reason: a.revoke_reason }));
    const assignmentRows = assignments.map((a) => h('tr', {},
      h('td', {}, ASSIGNMENT_ROLE[a.role] || a.role), h('td', {}, a.name, a.type === 'group' ? ' (nhóm)' : ''),
      h('td', {}, fmtTime(a.from)), h('td', {}, a.until ? fmtTime(a.until) : '—'),
      h('td', {}, a.active ? 'Đang hiệu lực' : 'Hết hiệu lực'), h('td', {}, a.reason || '')));

    // Responsible units: groups and successions resolved.
    const responsible = past
      ? past.assignments.filter((a) => a.valid_at).flatMap((a) => a.units.map((u) => ({ role: a.role, unit_id: u, unit_name: nameOf(u), via: Object.values(a.assignee)[0] })))
      : r.at ? [] : live.responsible_units.map((u) => ({ role: u.role, unit_id: u.unit_id, unit_name: u.unit_name, via: u.via_id }));
    const responsibleRows = responsible.map((u) => h('tr', {},
      h('td', {}, ASSIGNMENT_ROLE[u.role] || u.role), h('td', {}, unitLink(u.unit_id, u.unit_name)),
      h('td', {}, u.via === u.unit_id ? 'trực tiếp' : `qua ${nameOf(u.via)}`)));

    const sections = [head, diffForm(r, 'item', id),
      h('h2', {}, 'Phân công'),
      table(null, ['Vai trò', 'Đơn vị / nhóm', 'Hiệu lực từ', 'Đến', 'Tình trạng', 'Lý do thu hồi'], assignmentRows, { id: 'assignments' }),
      h('h2', {}, 'Đơn vị chịu trách nhiệm'),
      table(null, ['Vai trò', 'Đơn vị', 'Căn cứ'], responsibleRows, { id: 'responsible' })];

    // Tasks and report lines: absent from the answer when the role may not see them.
    const tasks = past ? (live.visibility === 'public' ? null : past.tasks) : r.at ? [] : live.tasks;
    if (tasks) {
      sections.push(h('h2', {}, 'Nhiệm vụ của các đơn vị'),
        live.visibility === 'own_units' ? h('p', { class: 'meta' }, 'Chỉ hiển thị nhiệm vụ và báo cáo của đơn vị bạn.') : null,
        table(null, ['Mã', 'Đơn vị', 'Nhiệm vụ', 'Người phụ trách', 'Lãnh đạo phụ trách', 'Hạn', 'Trạng thái', 'Tình trạng hạn'],
          tasks.map((t) => h('tr', { 'data-task': t.task_id },
            h('td', {}, t.task_id), h('td', {}, t.unit_name || nameOf(t.unit_id)), h('td', {}, t.title),
            h('td', {}, t.person_responsible), h('td', {}, t.leader_in_charge), h('td', {}, fmtDate(t.due_on)),
            h('td', {}, t.cancelled ? h('span', { class: 'badge s-suspended' }, 'Đã hủy') : statusBadge(t.status)),
            h('td', {}, qualifierBadge(t.deadline_qualifier)))), { id: 'tasks' }));
      const times = new Map((live.report_lines || []).map((l) => [l.report_id, l]));
      const lines = (snapshot ? snapshot.report_lines : []).map((l) => {
        const known = r.at ? null : times.get(l.report_id);
        return {
          unit: nameOf(l.unit_id), year: l.quarter.year, quarter: l.quarter.quarter, review: l.report_status,
          progress: l.progress, reported: l.reported_status, submitted: known && known.first_submitted_at, revised: known && known.last_revised_at,
        };
      });
      lines.sort((x, y) => (y.year - x.year) || (y.quarter - x.quarter) || x.unit.localeCompare(y.unit, 'vi'));
      sections.push(h('h2', {}, 'Báo cáo theo quý'),
        table(null, ['Quý', 'Đơn vị', 'Tiến độ', 'Trạng thái báo cáo', 'Gửi lần đầu', 'Sửa lần cuối', 'Xem xét'],
          lines.map((l) => h('tr', {}, h('td', {}, quarterLabel(l.year, l.quarter)), h('td', {}, l.unit), h('td', {}, l.progress),
            h('td', {}, l.reported ? STATUS[l.reported] : '—'), h('td', {}, fmtTime(l.submitted)), h('td', {}, fmtTime(l.revised)),
            h('td', {}, reviewBadge(l.review)))), { id: 'report-lines' }));
    } else {
      sections.push(h('p', { class: 'notice', id: 'no-internals' }, 'Nhiệm vụ và báo cáo của các đơn vị không hiển thị với vai trò người xem.'));
    }

    // Change history on both clocks, as far as it was known (or true) at the instant shown.
    const onAxis = (p) => (r.axis === 'effective' ? p.effective_from : p.recorded_from);
    const history = live.status_history.filter((p) => known(onAxis(p)));
    sections.push(h('h2', {}, 'Lịch sử thay đổi trạng thái'),
      table(null, ['Từ trạng thái', 'Sang trạng thái', 'Lý do', 'Minh chứng', 'Người thực hiện', 'Ghi nhận lúc', 'Có hiệu lực từ'],
        history.map((p) => h('tr', {}, h('td', {}, p.previous_status ? STATUS[p.previous_status] : '—'), h('td', {}, statusBadge(p.status)),
          h('td', {}, p.reason || '—'), h('td', {}, p.evidence || '—'),
          h('td', {}, p.actor_user, p.actor_unit ? ` (${nameOf(p.actor_unit)})` : ''),
          h('td', {}, fmtTime(p.recorded_from)), h('td', {}, fmtTime(p.effective_from)))), { id: 'history' }));
    fill(main, ...sections);
  }

  // Unit scorecard ──────────────────────────────────────────────────────────────────────────

  async function pageUnits(main, r) {
    if (!can.seeAllUnits()) {
      go('don-vi', can.staffUnit());
      return;
    }
    const now = quarterOf(r.at ? Date.parse(r.at) : Date.now());
    const matrix = await api(`/v1/plans/${PLAN_DEFAULT}/compliance`, { year: now.year, quarter: now.quarter });
    const units = matrix.units.map((u) => [u.unit_id, u.unit_name]).sort((a, b) => a[1].localeCompare(b[1], 'vi'));
    fill(main, h('h1', {}, 'Bảng theo dõi theo đơn vị'),
      h('p', {}, 'Chọn đơn vị có trách nhiệm với kế hoạch:'),
      h('ul', { id: 'unit-list' }, units.map(([id, name]) => h('li', {}, h('a', { href: href('don-vi', id) }, name)))));
  }

  async function pageUnit(main, r) {
    const id = r.arg;
    if (!can.scorecard(id)) {
      // Unit staff read their own unit's internals only: the page does not even ask for another's.
      fill(main, h('h1', {}, 'Bảng theo dõi đơn vị'),
        h('p', { class: 'error', id: 'not-allowed' }, 'Vai trò của bạn chỉ được xem bảng theo dõi của đơn vị mình.'),
        can.staffUnit() ? h('p', {}, h('a', { href: href('don-vi', can.staffUnit()) }, 'Xem đơn vị của bạn')) : null);
      return;
    }
    let model;
    if (r.at) {
      let v;
      try {
        v = (await api(`/v1/as-of/units/${encodeURIComponent(id)}`, asOf(r)));
      } catch (e) {
        if (e.status !== 404) throw e;
        fill(main, h('h1', {}, nameOf(id)), h('p', { class: 'notice' }, 'Đơn vị này chưa có trong hệ thống tại thời điểm đang xem.'));
        return;
      }
      learnName(v.unit.unit_id, v.unit.name);
      model = {
        unit: v.unit,
        items: v.items.map((x) => ({ ...x.item, lead: x.role === 'lead', role: x.role })),
        tasks: v.tasks.map((t) => ({ ...t, unit_name: nameOf(t.unit_id) })),
        compliance: v.compliance.map((c) => ({ year: c.quarter.year, quarter: c.quarter.quarter, due_at: c.due_at, first_submitted_at: c.first_submitted_at, review_status: c.review_status, compliance: c.compliance })),
      };
    } else {
      const v = await api(`/v1/units/${encodeURIComponent(id)}/scorecard`);
      learnName(v.unit.unit_id, v.unit.name);
      model = {
        unit: v.unit,
        items: v.items.map((x) => ({ ...x, role: x.lead ? 'lead' : 'coordinator' })),
        tasks: v.tasks,
        compliance: v.compliance,
      };
    }
    const open = (x) => x.status !== 'completed' && !x.cancelled;
    const overdueItems = model.items.filter((i) => i.lead && open(i) && i.deadline_qualifier === 'overdue');
    const overdueTasks = model.tasks.filter((t) => open(t) && t.deadline_qualifier === 'overdue');
    const tally = (c) => model.compliance.filter((x) => x.compliance === c).length;
    fill(main, 
      h('div', { class: 'card' },
        h('p', { class: 'meta' }, can.seeAllUnits() ? h('a', { href: href('don-vi') }, 'Đơn vị') : 'Đơn vị', ' › ', model.unit.name),
        h('h1', {}, model.unit.name)),
      h('div', { class: 'counts', id: 'unit-counts' },
        h('div', { class: 'count', 'data-count': 'items' }, h('strong', {}, model.items.length), h('span', {}, 'Nội dung được giao')),
        h('div', { class: 'count', 'data-count': 'tasks' }, h('strong', {}, model.tasks.length), h('span', {}, 'Nhiệm vụ')),
        h('div', { class: 'count', 'data-count': 'overdue' }, h('strong', {}, overdueItems.length + overdueTasks.length), h('span', { class: 'badge q-overdue' }, 'Việc quá hạn')),
        Object.keys(COMPLIANCE).map((c) => h('div', { class: 'count', 'data-count': `compliance-${c}` }, h('strong', {}, tally(c)), h('span', { class: `badge c-${c}` }, `Báo cáo ${COMPLIANCE[c].toLowerCase()}`)))),
      h('h2', {}, 'Nội dung được giao'),
      table(null, [{ label: 'STT', num: true }, 'Nội dung', 'Vai trò', 'Trạng thái', 'Hạn', 'Tình trạng hạn'],
        model.items.map((i) => h('tr', { 'data-item': i.item_id }, h('td', { class: 'num' }, i.ordinal), h('td', {}, h('a', { href: href('muc', i.item_id) }, i.title)),
          h('td', {}, ASSIGNMENT_ROLE[i.role]), h('td', {}, statusBadge(i.status)), h('td', {}, fmtDate(i.due_on)), h('td', {}, qualifierBadge(i.deadline_qualifier)))), { id: 'unit-items' }),
      h('h2', {}, 'Nhiệm vụ'),
      table(null, ['Mã', 'Nhiệm vụ', 'Người phụ trách', 'Hạn', 'Trạng thái', 'Tình trạng hạn'],
        model.tasks.map((t) => h('tr', { 'data-task': t.task_id }, h('td', {}, t.task_id), h('td', {}, t.title), h('td', {}, t.person_responsible),
          h('td', {}, fmtDate(t.due_on)), h('td', {}, t.cancelled ? h('span', { class: 'badge s-suspended' }, 'Đã hủy') : statusBadge(t.status)), h('td', {}, qualifierBadge(t.deadline_qualifier)))), { id: 'unit-tasks' }),
      h('h2', {}, 'Việc quá hạn'),
      h('ul', { id: 'unit-overdue' },
        overdueItems.map((i) => h('li', {}, `Nội dung ${i.ordinal}: ${i.title} (hạn ${fmtDate(i.due_on)})`)),
        overdueTasks.map((t) => h('li', {}, `Nhiệm vụ ${t.task_id}: ${t.title} (hạn ${fmtDate(t.due_on)})`)),
        overdueItems.length + overdueTasks.length ? null : h('li', {}, 'Không có việc quá hạn.')),
      h('h2', {}, 'Báo cáo định kỳ theo quý'),
      table(null, ['Quý', 'Hạn nộp', 'Gửi lần đầu', 'Tuân thủ', 'Xem xét'],
        model.compliance.map((c) => h('tr', {}, h('td', {}, quarterLabel(c.year, c.quarter)), h('td', {}, `trước ${fmtTime(c.due_at)}`),
          h('td', {}, fmtTime(c.first_submitted_at)), h('td', {}, complianceBadge(c.compliance)), h('td', {}, c.review_status ? reviewBadge(c.review_status) : '—'))), { id: 'unit-compliance' }));
  }

  // Compliance matrix ───────────────────────────────────────────────────────────────────────

  async function pageCompliance(main, r) {
    const live = await plan();
    const end = r.at ? Date.parse(r.at) : Date.now();
    const first = quarterOf(Date.parse(`${live.plan.issued_on}T00:00:00+07:00`));
    const quarters = quartersBetween(first, quarterOf(end));
    const cells = new Map(); // unit → quarter label → row
    const put = (unit, name, year, quarter, row) => {
      learnName(unit, name);
      if (!cells.has(unit)) cells.set(unit, new Map());
      cells.get(unit).set(quarterLabel(year, quarter), row);
    };
    if (r.at) {
      const past = await api('/v1/as-of/plan', asOf(r));
      for (const c of past.compliance.filter((x) => x.plan_id === PLAN_DEFAULT)) {
        put(c.unit_id, c.unit_name, c.quarter.year, c.quarter.quarter, c);
      }
    } else {
      const answers = await Promise.all(quarters.map((q) => api(`/v1/plans/${PLAN_DEFAULT}/compliance`, q)));
      answers.forEach((m, k) => {
        for (const u of m.units) put(u.unit_id, u.unit_name, quarters[k].year, quarters[k].quarter, u);
      });
    }
    const units = [...cells.keys()].sort((a, b) => nameOf(a).localeCompare(nameOf(b), 'vi'));
    const labels = quarters.map((q) => quarterLabel(q.year, q.quarter));
    const totals = labels.map((l) => {
      const t = Object.fromEntries(Object.keys(COMPLIANCE).map((c) => [c, 0]));
      for (const u of units) { const row = cells.get(u).get(l); if (row) t[row.compliance] += 1; }
      return t;
    });
    const rows = units.map((u) => h('tr', { 'data-unit': u },
      h('th', { scope: 'row' }, can.scorecard(u) ? h('a', { href: href('don-vi', u) }, nameOf(u)) : nameOf(u)),
      labels.map((l) => {
        const row = cells.get(u).get(l);
        if (!row) return h('td', { 'data-quarter': l }, h('span', { class: 'meta' }, 'không phải báo cáo'));
        return h('td', { 'data-quarter': l, 'data-compliance': row.compliance },
          h('div', { class: 'cell' }, complianceBadge(row.compliance),
            row.first_submitted_at ? h('span', { class: 'meta' }, `gửi ${fmtDate(row.first_submitted_at)}`) : null,
            row.review_status ? h('span', { class: 'meta' }, REVIEW[row.review_status]) : null));
      })));
    const totalRows = Object.keys(COMPLIANCE).map((c) => h('tr', { 'data-total': c },
      h('th', { scope: 'row' }, `Tổng: ${COMPLIANCE[c].toLowerCase()}`), totals.map((t) => h('td', { class: 'num' }, t[c]))));
    fill(main, 
      h('h1', {}, 'Tuân thủ báo cáo định kỳ theo quý'),
      h('p', { class: 'meta' }, 'Báo cáo quý gửi Sở Tài chính trước ngày 15 của tháng cuối quý. Đúng hạn: gửi trước hạn; muộn: gửi sau hạn; chưa nộp: đã quá hạn mà chưa gửi; chưa đến hạn: chưa gửi, chưa tới hạn.'),
      h('div', { class: 'legend' }, Object.keys(COMPLIANCE).map((c) => complianceBadge(c))),
      table(`Đơn vị × quý (${units.length} đơn vị)`, ['Đơn vị', ...labels], [...rows, ...totalRows], { id: 'matrix' }),
      exportsCard(quarters));
  }

  function exportsCard(quarters) {
    if (!can.exports()) return null;
    const select = h('select', { id: 'export-quarter' }, [...quarters].reverse().map((q) =>
      h('option', { value: `${q.year}-${q.quarter}` }, quarterLabel(q.year, q.quarter))));
    const status = h('p', { id: 'export-status', 'aria-live': 'polite', class: 'meta' });
    const chosen = () => { const [year, quarter] = select.value.split('-'); return { year, quarter }; };
    const button = (id, label, path, params) => h('button', {
      type: 'button', id, onclick: () => download(path, params(), status),
    }, label);
    return h('div', { class: 'card no-print', id: 'exports' },
      h('h2', {}, 'Tải về'),
      h('div', { class: 'form-row' },
        h('div', {}, h('label', { for: 'export-quarter' }, 'Quý tổng hợp'), select),
        h('div', {}, button('export-xlsx', 'Bảng tổng hợp (XLSX)', `/v1/plans/${PLAN_DEFAULT}/compilation`, () => ({ ...chosen(), format: 'xlsx' }))),
        h('div', {}, button('export-csv', 'Bảng tổng hợp (CSV)', `/v1/plans/${PLAN_DEFAULT}/compilation`, () => ({ ...chosen(), format: 'csv' }))),
        h('div', {}, button('export-compliance', 'Dữ liệu tuân thủ (CSV)', '/v1/exports/compliance', () => ({ format: 'csv' })))),
      status);
  }

  /** Downloads an export with the bearer token (a plain link could not carry it). */
  async function download(path, params, status) {
    status.textContent = 'Đang tải…';
    try {
      const response = await request(path, params);
      const blob = await response.blob();
      const disposition = response.headers.get('Content-Disposition') || '';
      const match = /filename="?([^";]+)"?/.exec(disposition);
      const link = h('a', { href: URL.createObjectURL(blob), download: match ? match[1] : 'kh63-export' });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      status.textContent = `Đã tải ${link.download} (${Math.ceil(blob.size / 1024)} KB).`;
    } catch (e) {
      status.textContent = `Không tải được: ${e.message}`;
    }
  }

  // Audit trail ─────────────────────────────────────────────────────────────────────────────

  const AUDIT_FILTERS = [
    ['aggregate_type', 'Loại đối tượng'], ['aggregate_id', 'Mã đối tượng'], ['unit', 'Đơn vị thực hiện'],
    ['actor', 'Người thực hiện'], ['event_type', 'Loại sự kiện'],
  ];
  const AUDIT_RANGES = [
    ['recorded_from', 'Ghi nhận từ'], ['recorded_to', 'Ghi nhận trước'], ['effective_from', 'Hiệu lực từ'], ['effective_to', 'Hiệu lực trước'],
  ];

  async function pageAudit(main, r) {
    if (!can.audit()) {
      fill(main, h('h1', {}, 'Nhật ký kiểm toán'), h('p', { class: 'error' }, 'Vai trò của bạn không được xem nhật ký kiểm toán.'));
      return;
    }
    const p = r.params;
    const chosen = {}; // the filters in the address, which paging keeps
    for (const [k] of [...AUDIT_FILTERS, ...AUDIT_RANGES, ['quarantined']]) if (p.get(k)) chosen[k] = p.get(k);
    const limit = Number(p.get('limit')) || 50;
    chosen.limit = limit;
    const filters = { ...chosen };
    // The instant shown bounds the trail on its axis, unless a filter already does.
    if (r.at) {
      const bound = r.axis === 'effective' ? 'effective_to' : 'recorded_to';
      if (!filters[bound]) filters[bound] = r.at;
    }
    const cursor = p.get('cursor');
    const pageNo = Number(p.get('page')) || 1;
    const answer = await api('/v1/audit', { ...filters, cursor });
    const form = h('form', { class: 'card no-print', id: 'audit-filters' },
      h('h2', {}, 'Bộ lọc'),
      h('div', { class: 'form-row' },
        AUDIT_FILTERS.map(([k, label]) => h('div', {}, h('label', { for: `f-${k}` }, label),
          k === 'aggregate_type'
            ? h('select', { id: `f-${k}`, name: k }, h('option', { value: '' }, 'Tất cả'), AGGREGATES.map((a) => h('option', { value: a, selected: filters[k] === a }, a)))
            : h('input', { id: `f-${k}`, name: k, value: filters[k] || '' }))),
        AUDIT_RANGES.map(([k, label]) => h('div', {}, h('label', { for: `f-${k}` }, `${label} (giờ VN)`),
          timeField(`f-${k}`, filters[k] ? Date.parse(filters[k]) : null, { name: k, 'data-time': true }))),
        h('div', {}, h('label', { for: 'f-quarantined' }, 'Tin nhắn cách ly'),
          h('select', { id: 'f-quarantined', name: 'quarantined' },
            h('option', { value: '' }, 'Tất cả'), h('option', { value: 'true', selected: filters.quarantined === 'true' }, 'Chỉ tin cách ly'),
            h('option', { value: 'false', selected: filters.quarantined === 'false' }, 'Chỉ sự kiện'))),
        h('div', {}, h('label', { for: 'f-limit' }, 'Số dòng mỗi trang'), h('input', { id: 'f-limit', name: 'limit', type: 'number', min: 1, max: 1000, value: limit })),
        h('div', {}, h('button', { type: 'submit' }, 'Lọc'))));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const extra = { cursor: null, page: null };
      for (const el of form.elements) {
        if (!el.name) continue;
        if (el.hasAttribute('data-time')) {
          const value = readTime(el);
          if (value === undefined) return;
          extra[el.name] = value;
        } else {
          extra[el.name] = el.value;
        }
      }
      go('kiem-toan', '', extra);
    });
    const rows = answer.entries.map((e) => {
      const env = e.envelope;
      const q = e.quarantined;
      return h('tr', { 'data-sequence': e.stream_sequence },
        h('td', { class: 'num' }, e.stream_sequence),
        h('td', {}, env ? env.type.replace('vn.gov.thanhhoa.remediation.', '') : h('span', { class: 'badge q-overdue' }, 'Tin nhắn cách ly')),
        h('td', {}, env ? `${env.aggregatetype} ${env.aggregateid}` : q.subject),
        h('td', {}, env ? `${env.actoruser}${env.actorunit ? ` (${nameOf(env.actorunit)})` : ''}` : q.decided_by || '—'),
        h('td', {}, fmtTime(env ? env.recordedtime || env.time : q.stored_at)),
        h('td', {}, env ? fmtTime(env.effectivetime || env.time) : '—'),
        h('td', {}, h('details', {}, h('summary', {}, 'Xem phong bì'), h('pre', { class: 'envelope' }, JSON.stringify(env || q, null, 2)))));
    });
    const nav = h('p', { class: 'no-print' },
      pageNo > 1 ? h('a', { href: href('kiem-toan', '', chosen) }, '« Trang đầu') : null, ' ',
      `Trang ${pageNo}`, ' ',
      answer.next_cursor ? h('a', { id: 'audit-next', href: href('kiem-toan', '', { ...chosen, cursor: answer.next_cursor, page: pageNo + 1 }) }, 'Trang sau »') : '(hết)');
    const verify = can.verify() ? h('div', { class: 'card', id: 'verify' },
      h('h2', {}, 'Kiểm tra toàn vẹn chuỗi băm'),
      h('p', { class: 'meta' }, 'Duyệt toàn bộ nhật ký sự kiện và bảng kiểm toán; mất thời gian tương ứng độ dài nhật ký.'),
      h('button', { type: 'button', id: 'verify-run', onclick: runVerify }, 'Kiểm tra ngay'),
      h('div', { id: 'verify-result', 'aria-live': 'polite' })) : null;
    fill(main, h('h1', {}, 'Nhật ký kiểm toán'),
      h('p', { class: 'notice' }, `Mỗi lần xem nhật ký đều được ghi lại thành sự kiện truy cập (lần này: #${answer.read_sequence}).`),
      verify, form,
      table(`Sự kiện (${answer.entries.length} dòng)`, [{ label: 'Số thứ tự', num: true }, 'Loại sự kiện', 'Đối tượng', 'Người thực hiện', 'Ghi nhận lúc', 'Có hiệu lực', 'Phong bì'], rows, { id: 'audit' }),
      nav);
  }

  async function runVerify() {
    const out = document.getElementById('verify-result');
    fill(out, h('p', { class: 'meta' }, 'Đang kiểm tra…'));
    try {
      const v = await api('/v1/audit/verify');
      const label = { ok: 'Toàn vẹn', signed_off: 'Toàn vẹn (có tin nhắn cách ly đã được phê duyệt)', broken: 'PHÁT HIỆN SAI LỆCH' }[v.status] || v.status;
      fill(out, h('p', { class: v.status === 'broken' ? 'error' : 'notice', id: 'verify-status', 'data-status': v.status },
        `${label}: ${v.events} sự kiện, ${v.chains} chuỗi, ${v.audit_rows} dòng bảng kiểm toán, đến sự kiện #${v.last_sequence}.`,
        v.broken ? ` Điểm gãy đầu tiên: ${v.broken.place} #${v.broken.sequence} (${v.broken.aggregate}): ${v.broken.reason}.` : ''));
    } catch (e) {
      fill(out, problemView(e));
    }
  }

  // ── errors and the main loop ──────────────────────────────────────────────────────────────

  /** What a problem type means for the reader, in Vietnamese; the API's own detail goes below. */
  const PROBLEM = {
    'urn:kh63:problem:read-not-recorded': 'Nhật ký kiểm toán tạm thời không xem được: mỗi lượt xem phải được ghi lại trước, mà máy chủ sự kiện (NATS) đang không phản hồi. Hãy thử lại sau ít phút.',
    'urn:kh63:problem:store-unavailable': 'Máy chủ sự kiện (NATS) đang không phản hồi. Hãy thử lại sau ít phút.',
    'urn:kh63:problem:database-unavailable': 'Cơ sở dữ liệu của dịch vụ truy vấn đang không phản hồi. Hãy thử lại sau ít phút.',
    'urn:kh63:problem:projection-behind': 'Dữ liệu chưa cập nhật kịp. Hãy thử lại sau giây lát.',
    'urn:kh63:problem:invalid-range': 'Khoảng thời gian không hợp lệ.',
    'urn:kh63:problem:malformed-request': 'Yêu cầu không hợp lệ (kiểm tra các ô đã nhập).',
  };

  function problemView(e) {
    const status = e.status;
    const type = e.problem && e.problem.type;
    let message;
    if (status === 0) message = 'Không kết nối được dịch vụ truy vấn. Kiểm tra mạng hoặc liên hệ quản trị hệ thống, rồi thử lại.';
    else if (PROBLEM[type]) message = PROBLEM[type];
    else if (status === 403) message = 'Vai trò của bạn không được xem nội dung này.';
    else if (status === 404) message = 'Không tìm thấy nội dung yêu cầu (hoặc nó chưa tồn tại tại thời điểm đang xem).';
    else if (status === 503) message = 'Dịch vụ tạm thời chưa sẵn sàng. Hãy thử lại sau ít phút.';
    else message = `Lỗi ${status}.`;
    return h('div', { class: 'error', role: 'alert', id: 'page-error', 'data-status': status }, h('p', {}, message),
      status && e.message ? h('p', { class: 'detail' }, `Chi tiết kỹ thuật (${status}): ${e.message}`) : null,
      h('button', { type: 'button', onclick: () => render() }, 'Thử lại'));
  }

  const PAGES = {
    'tong-quan': pageOverview, muc: pageItem, 'don-vi': (main, r) => (r.arg ? pageUnit(main, r) : pageUnits(main, r)),
    'tuan-thu': pageCompliance, 'kiem-toan': pageAudit,
  };

  let renderCount = 0;

  /**
   * Draws the route in the location. Routes can follow each other faster than their answers come
   * (a radio button and the slider a moment apart), and answers come back in any order: a render
   * draws only while it is the latest. Its page is built off-screen and put in place only then,
   * so an answer that arrives late can never paint an earlier route over the one asked for.
   */
  async function render() {
    const started = performance.now();
    const ticket = ++renderCount;
    const current = () => ticket === renderCount;
    // Marks the latest render that gave way to a later one (the browser test waits for it).
    const superseded = () => { document.body.dataset.superseded = String(ticket); };
    const r = route();
    const main = document.getElementById('main');
    const alerts = document.getElementById('alerts');
    document.body.removeAttribute('data-rendered');
    document.body.removeAttribute('data-complete');
    // A link from deploy/up.sh carries the token in the fragment, which is never sent to a server.
    const linked = /^#token=(.+)$/.exec(location.hash);
    if (linked) {
      history.replaceState(null, '', location.pathname);
      try {
        await signIn(decodeURIComponent(linked[1]));
        location.hash = '#/tong-quan';
      } catch (e) {
        session.token = null;
        pageSignIn(main, 'Mã truy cập trong đường dẫn không hợp lệ hoặc đã hết hạn.');
      }
      return;
    }
    // Readiness needs no token: asked at once, next to who the caller is.
    const readyAnswer = readiness();
    if (!session.token) session.token = sessionStorage.getItem(TOKEN_KEY);
    if (session.token && !session.me) {
      try {
        session.me = await api('/v1/me');
      } catch (e) {
        if (e.status === 401) { signOut(); return; }
        fill(main, problemView(e));
        return;
      }
    }
    if (!session.me || r.page === 'dang-nhap') {
      renderHeader(r);
      fill(alerts);
      pageSignIn(main);
      document.body.dataset.rendered = String(performance.now() - started);
      document.body.dataset.complete = String(ticket);
      return;
    }
    renderHeader(r);
    const page = PAGES[r.page];
    fill(main, h('p', { class: 'loading' }, 'Đang tải…'));
    const [ready] = await Promise.all([readyAnswer, renderTime(r, current)]);
    if (!current()) { superseded(); return; }
    fill(alerts, renderPastBanner(r), ready);
    const stage = document.createElement('div');
    let after = null;
    try {
      if (!page) throw new ApiError(404, null, 'Không có trang này.');
      after = await page(stage, r);
    } catch (e) {
      if (!current()) { superseded(); return; }
      if (e.status === 401) { signOut(); return; }
      fill(stage, problemView(e));
    }
    if (!current()) { superseded(); return; }
    main.replaceChildren(...stage.childNodes);
    renderHeader(r);
    renderFooter();
    document.body.dataset.rendered = String(performance.now() - started);
    // Since navigation start: what a user waits for on a cold load (the browser test reports it).
    document.body.dataset.renderedAt = String(performance.now());
    document.body.dataset.page = r.page;
    if (after) {
      try {
        await after();
      } catch (e) {
        main.append(problemView(e));
      }
    }
    if (ticket === renderCount) document.body.dataset.complete = String(ticket);
  }

  window.addEventListener('hashchange', () => { render(); });
  document.addEventListener('DOMContentLoaded', () => { render(); });
})();
