// Quiesce: keeps an open page up to date with the maintenance state (server-sent events),
// counts down to its expected end, copies kept text, and keeps the control panel's task
// progress and instance list fresh. No framework, no inline script (CSP).
/* global EventSource, DOMParser */
'use strict'

;(function () {
  const banner = document.getElementById('maintenance-banner')
  const maintenancePage = document.querySelector('[data-maintenance-page]')

  function formatTime (iso) {
    return iso ? iso.slice(0, 10) + ' ' + iso.slice(11, 16) + ' UTC' : ''
  }

  // --- Maintenance: the banner and what may be written follow the state, live. ---

  function plural (count, word) {
    return count + ' ' + word + (count === 1 ? '' : 's')
  }

  /** "in 25 minutes", "in 2 hours 5 minutes": beside an exact time, which stays as the server wrote it. */
  function timeLeft (iso) {
    const ms = Date.parse(iso) - Date.now()
    if (!(ms > 0)) return 'any moment now'
    const minutes = Math.ceil(ms / 60000)
    if (minutes < 60) return 'in ' + plural(minutes, 'minute')
    if (minutes < 48 * 60) {
      const hours = Math.floor(minutes / 60)
      return 'in ' + plural(hours, 'hour') + (minutes % 60 ? ' ' + plural(minutes % 60, 'minute') : '')
    }
    return 'in ' + plural(Math.round(minutes / 1440), 'day')
  }

  function showCountdowns () {
    for (const time of document.querySelectorAll('time[data-countdown]')) {
      let left = time.nextElementSibling
      if (!left || !left.classList.contains('countdown')) {
        left = document.createElement('span')
        left.className = 'countdown'
        // Inside the banner's live region, but not worth announcing every minute.
        left.setAttribute('aria-live', 'off')
        time.after(left)
      }
      left.textContent = ' (' + timeLeft(time.dateTime) + ')'
    }
  }

  /** Disables or enables what needs writing, with the reason shown beside it while it is off. */
  function showWritable (writable) {
    for (const el of document.querySelectorAll('[data-requires-write]')) {
      // Buttons (Delete, the control panel's forms) are really disabled, links only marked.
      if (el.tagName === 'BUTTON') el.disabled = !writable
      else if (writable) el.removeAttribute('aria-disabled')
      else el.setAttribute('aria-disabled', 'true')
    }
    for (const el of document.querySelectorAll('[data-off-note]')) {
      if (writable || !document.getElementById(el.dataset.offNote)) el.removeAttribute('aria-describedby')
      else el.setAttribute('aria-describedby', el.dataset.offNote)
    }
    for (const el of document.querySelectorAll('[data-write-note]')) el.hidden = writable
    for (const el of document.querySelectorAll('[data-when-writable]')) el.hidden = !writable
    for (const el of document.querySelectorAll('[data-save]')) el.textContent = writable ? 'Save' : 'Try to save'
  }

  /** Puts the server's new banner (views/banner.eta, written for this reader) in place of the old one. */
  function showBanner (html) {
    const fresh = new DOMParser().parseFromString(html, 'text/html')
    const next = fresh.getElementById('maintenance-banner')
    if (!next || Number(next.dataset.version) < Number(banner.dataset.version)) return
    // The element stays (it is the live region screen readers listen to); its content changes.
    for (const name of ['class', 'data-mode', 'data-version', 'data-can-write', 'data-closed']) banner.setAttribute(name, next.getAttribute(name))
    banner.hidden = next.hidden || banner.hasAttribute('data-state-in-page')
    banner.replaceChildren(...next.childNodes)
    const announcement = document.querySelector('[data-announcement]')
    if (announcement) announcement.remove()
    const nextAnnouncement = fresh.querySelector('[data-announcement]')
    if (nextAnnouncement) banner.after(nextAnnouncement)
    showWritable(next.dataset.canWrite === 'true')
    showCountdowns()
  }

  function fetchBanner (version, attempt) {
    fetch('/maintenance/banner?version=' + version, { headers: { accept: 'text/html' }, credentials: 'same-origin' })
      .then(function (response) {
        if (!response.ok) throw new Error('banner: ' + response.status)
        return response.text()
      })
      .then(showBanner)
      .catch(function () {
        if (attempt < 5) setTimeout(function () { fetchBanner(version, attempt + 1) }, 2000 * (attempt + 1))
      })
  }

  function onState (state) {
    // The maintenance page shows the state as its content: it reloads to show a new one.
    if (maintenancePage) {
      if (String(state.version) !== maintenancePage.dataset.version) window.location.reload()
      return
    }
    if (banner && String(state.version) !== banner.dataset.version) fetchBanner(state.version, 0)
  }

  if ('EventSource' in window && (banner || maintenancePage)) {
    const events = new EventSource('/api/maintenance/events')
    events.addEventListener('state', function (event) {
      onState(JSON.parse(event.data))
    })
  }
  showCountdowns()
  setInterval(showCountdowns, 15000)

  // A link that is off (aria-disabled) does not go anywhere, by keyboard either.
  document.addEventListener('click', function (event) {
    if (event.target.closest && event.target.closest('a[aria-disabled="true"]')) event.preventDefault()
  })

  // --- The "not saved" page: a copy button for the kept text. ---

  for (const button of document.querySelectorAll('[data-copy]')) {
    const source = document.getElementById(button.dataset.copy)
    const status = button.parentElement.querySelector('[data-copy-status]')
    if (!source) continue
    button.hidden = false
    button.addEventListener('click', function () {
      const said = function (text) { if (status) status.textContent = text }
      const selectIt = function () {
        source.focus()
        source.select()
        // Without the clipboard API (a plain-HTTP site), the old command still copies a selection.
        let copied = false
        try { copied = document.execCommand('copy') } catch (err) { copied = false }
        said(copied ? 'Copied.' : 'The text is selected: press Ctrl+C (⌘C on a Mac) to copy it.')
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.value).then(function () { said('Copied.') }, selectIt)
      } else {
        selectIt()
      }
    })
  }

  const progress = document.querySelector('[data-task-progress]')
  if (progress && 'EventSource' in window) {
    const bar = progress.querySelector('progress')
    const field = function (name) { return document.querySelector('[data-progress="' + name + '"]') }
    const samples = []
    const finished = ['done', 'failed', 'cancelled']
    // A page rendered after the task ended must not reload itself (it would, again and again).
    const endedBeforeLoad = finished.includes(progress.dataset.state)
    const stream = new EventSource('/api/tasks/' + progress.dataset.taskId + '/events')
    stream.addEventListener('progress', function (event) {
      const task = JSON.parse(event.data)
      const max = Math.max(task.total, 1)
      bar.max = max
      bar.value = task.state === 'done' ? max : Math.min(task.done, max)
      field('percent').textContent = (task.state === 'done' ? 100 : Math.floor(Math.min(task.done, max) * 100 / max)) + '%'
      field('count').textContent = task.done.toLocaleString('en') + ' of ' + task.total.toLocaleString('en')
      field('state').textContent = task.state
      if (field('batches')) field('batches').textContent = task.batches
      if (field('conflicts')) field('conflicts').textContent = task.conflicts + ' (retried ' + task.retries + ')'
      if (task.error && field('error')) {
        field('error').textContent = task.error
        field('error').hidden = false
      }
      // Rate and time left over the last ten seconds of progress.
      const now = Date.parse(task.at)
      samples.push([now, task.done])
      while (samples.length > 2 && now - samples[0][0] > 10000) samples.shift()
      const first = samples[0]
      const rate = now > first[0] ? (task.done - first[1]) * 1000 / (now - first[0]) : 0
      field('rate').textContent = rate > 0 ? Math.round(rate).toLocaleString('en') + ' per second' : ''
      field('eta').textContent = rate > 0 && task.state === 'running'
        ? 'about ' + Math.max(1, Math.ceil((task.total - task.done) / rate)) + ' s left'
        : ''
      if (finished.includes(task.state)) {
        stream.close()
        progress.dataset.state = task.state
        if (field('cancel')) field('cancel').hidden = true
        if (task.finishedAt && field('finished')) field('finished').textContent = formatTime(task.finishedAt)
        if (task.kind === 'export' && task.state === 'done' && !endedBeforeLoad) window.location.reload()
      }
    })
  }

  // The control panel's instances: read again every 2 seconds, with the time of the last check.
  const instances = document.querySelector('[data-instances]')
  if (instances) {
    const rows = instances.querySelector('[data-instance-rows]')
    const quiet = instances.querySelector('[data-quiet]')
    const checked = instances.querySelector('[data-checked]')
    const liveNote = instances.querySelector('[data-live-note]')
    const labels = Array.from(instances.querySelectorAll('thead th')).map(function (th) { return th.textContent })
    if (liveNote) liveNote.hidden = false
    const cell = function (index, text, tag) {
      const td = document.createElement(tag || 'td')
      td.textContent = text
      td.dataset.label = labels[index] || ''
      if (tag === 'th') td.scope = 'row'
      // Times stay on one line, as the server renders them.
      if (index === 2 || index === 3) td.className = 'nowrap'
      return td
    }
    const refresh = function () {
      fetch('/api/instances', { headers: { accept: 'application/json' } })
        .then(function (response) { return response.ok ? response.json() : null })
        .then(function (data) {
          const at = new Date().toISOString()
          if (!data) {
            if (checked) checked.textContent = at.slice(11, 19) + ' UTC (could not read the list; trying again)'
            return
          }
          rows.replaceChildren(...data.instances.map(function (instance) {
            const tr = document.createElement('tr')
            if (instance.stale) tr.className = 'stale'
            tr.append(
              cell(0, instance.id + (instance.stale ? ' (no heartbeat)' : ''), 'th'),
              cell(1, instance.address || '—'),
              cell(2, (instance.details && instance.details.database && instance.details.database.label) || '—'),
              cell(3, formatTime(instance.startedAt)),
              cell(4, instance.heartbeatAt.slice(11, 19) + ' UTC'),
              cell(5, instance.stateVersion + (instance.applied ? ' ✓ applied' : ' ✗ behind')),
              cell(6, String(instance.requestsInFlight)),
              cell(7, String(instance.writesInFlight))
            )
            return tr
          }))
          const live = data.instances.filter(function (i) { return !i.stale })
          const isQuiet = live.every(function (i) { return i.applied && i.writesInFlight === 0 })
          quiet.className = 'quiet-status ' + (isQuiet ? 'quiet' : 'busy')
          quiet.textContent = isQuiet
            ? 'Quiet: every instance enforces version ' + data.version + ' and no write is in flight.'
            : 'Not quiet yet: an instance has not applied version ' + data.version + ', or writes are still in flight.'
          if (checked) {
            checked.dateTime = at
            checked.textContent = at.slice(11, 19) + ' UTC'
          }
        })
        .catch(function () {
          if (checked) checked.textContent = new Date().toISOString().slice(11, 19) + ' UTC (could not reach the site; trying again)'
        })
    }
    setInterval(refresh, 2000)
  }

  // The expected end: the current UTC time beside it, and presets from now.
  for (const now of document.querySelectorAll('[data-now]')) {
    const tick = function () { now.textContent = formatTime(new Date().toISOString()) }
    setInterval(tick, 15000)
  }
  const presets = document.querySelector('[data-until-presets]')
  const until = document.getElementById('until')
  const echo = document.querySelector('[data-until-echo]')
  // The browser shows the field in its own format (a 12-hour clock, say): say it in the site's.
  const echoUntil = function () {
    if (!echo || !until) return
    const at = until.value ? Date.parse(until.value + ':00Z') : NaN
    if (Number.isNaN(at)) {
      echo.textContent = ''
      return
    }
    const minutes = Math.round((at - Date.now()) / 60000)
    echo.textContent = 'Ends ' + formatTime(new Date(at).toISOString()) + (minutes > 0 ? ', in ' + (minutes < 60 ? minutes + ' min' : Math.floor(minutes / 60) + ' h' + (minutes % 60 ? ' ' + (minutes % 60) + ' min' : '')) : ', which is not in the future') + '.'
  }
  if (until) until.addEventListener('input', echoUntil)
  if (presets && until && !until.disabled) {
    presets.hidden = false
    presets.addEventListener('click', function (event) {
      const button = event.target.closest('[data-until-minutes]')
      if (!button) return
      const minutes = Number(button.dataset.untilMinutes)
      // datetime-local takes "YYYY-MM-DDTHH:MM" with no zone: the panel reads it as UTC.
      until.value = minutes === 0 ? '' : new Date(Math.ceil(Date.now() / 60000) * 60000 + minutes * 60000).toISOString().slice(0, 16)
      echoUntil()
      until.focus()
    })
  }

  // Copy buttons (the password reset link): shown only where a script can copy.
  for (const button of document.querySelectorAll('[data-copy]')) {
    const field = document.getElementById(button.dataset.copy)
    if (!field) continue
    button.hidden = false
    button.addEventListener('click', function () {
      const copied = function () { button.textContent = 'Copied' }
      field.select()
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(copied, function () { if (document.execCommand('copy')) copied() })
      } else if (document.execCommand('copy')) {
        copied()
      }
    })
  }

  // "For 23 min": how long the site has been in maintenance, kept current.
  for (const elapsed of document.querySelectorAll('[data-elapsed-since]')) {
    const since = Date.parse(elapsed.dataset.elapsedSince)
    const show = function () {
      const minutes = Math.max(0, Math.floor((Date.now() - since) / 60000))
      elapsed.textContent = minutes < 60 ? minutes + ' min' : Math.floor(minutes / 60) + ' h ' + (minutes % 60) + ' min'
    }
    setInterval(show, 30000)
  }
})()
