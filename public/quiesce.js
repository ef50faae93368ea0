// Quiesce: keeps an open page up to date with the maintenance state (server-sent events),
// and keeps the control panel's instance list fresh. No framework, no inline script (CSP).
/* global EventSource */
'use strict'

;(function () {
  const body = document.body
  const user = body.dataset.user || ''
  const role = body.dataset.role || ''
  const banner = document.getElementById('maintenance-banner')

  function formatTime (iso) {
    return iso ? iso.slice(0, 10) + ' ' + iso.slice(11, 16) + ' UTC' : ''
  }

  function canWrite (state) {
    return state.mode === 'normal' || role === 'emergency' || (state.maintainer !== null && state.maintainer === user)
  }

  function setText (name, text) {
    const el = banner && banner.querySelector('[data-banner="' + name + '"]')
    if (el) el.textContent = text
  }

  function showState (state) {
    const writable = canWrite(state)
    if (banner) {
      banner.hidden = state.mode === 'normal'
      banner.dataset.mode = state.mode
      banner.className = 'maintenance-banner mode-' + state.mode
      setText('label', state.mode === 'exclusive' ? 'Exclusive maintenance' : 'Read-only maintenance')
      setText('reason', state.reason ? ': ' + state.reason : '')
      setText('since', 'Since ' + formatTime(state.since) + '.')
      setText('until', state.until ? 'Expected to end ' + formatTime(state.until) + '.' : '')
      setText('write', !writable
        ? 'Changes cannot be saved right now; reading and searching work as usual.'
        : role === 'emergency' && state.maintainer !== user
          ? 'You are the emergency user: your changes are saved.'
          : 'You are the maintainer: your changes are saved.')
    }
    for (const el of document.querySelectorAll('[data-requires-write]')) {
      if (writable) el.removeAttribute('aria-disabled')
      else el.setAttribute('aria-disabled', 'true')
      // Buttons of the control panel's forms (users): really disabled, not only marked.
      if (el.tagName === 'BUTTON') el.disabled = !writable
    }
    for (const el of document.querySelectorAll('[data-write-note]')) el.hidden = writable
    // The maintenance page reloads itself when the site opens again.
    if (document.querySelector('[data-maintenance-page]') && state.mode !== body.dataset.shownMode) {
      if (body.dataset.shownMode !== undefined) window.location.reload()
      body.dataset.shownMode = state.mode
    }
  }

  if ('EventSource' in window) {
    const events = new EventSource('/api/maintenance/events')
    events.addEventListener('state', function (event) {
      showState(JSON.parse(event.data))
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
              cell(2, formatTime(instance.startedAt)),
              cell(3, instance.heartbeatAt.slice(11, 19) + ' UTC'),
              cell(4, instance.stateVersion + (instance.applied ? ' ✓ applied' : ' ✗ behind')),
              cell(5, String(instance.requestsInFlight)),
              cell(6, String(instance.writesInFlight))
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
