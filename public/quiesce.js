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
      setText('write', writable
        ? 'You are the maintainer: your changes are saved.'
        : 'Changes cannot be saved right now; reading and searching work as usual.')
    }
    for (const el of document.querySelectorAll('[data-requires-write]')) {
      if (writable) el.removeAttribute('aria-disabled')
      else el.setAttribute('aria-disabled', 'true')
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

  const instances = document.querySelector('[data-instances]')
  if (instances) {
    const rows = instances.querySelector('[data-instance-rows]')
    const quiet = instances.querySelector('[data-quiet]')
    const cell = function (text, className) {
      const td = document.createElement('td')
      td.textContent = text
      if (className) td.className = className
      return td
    }
    const refresh = function () {
      fetch('/api/instances', { headers: { accept: 'application/json' } })
        .then(function (response) { return response.ok ? response.json() : null })
        .then(function (data) {
          if (!data) return
          rows.replaceChildren(...data.instances.map(function (instance) {
            const tr = document.createElement('tr')
            if (instance.stale) tr.className = 'stale'
            tr.append(
              cell(instance.id + (instance.stale ? ' (no heartbeat)' : '')),
              cell(instance.address || '—'),
              cell(formatTime(instance.startedAt)),
              cell(instance.heartbeatAt.slice(11, 19) + ' UTC'),
              cell(instance.stateVersion + (instance.applied ? ' ✓ applied' : ' ✗ behind')),
              cell(String(instance.requestsInFlight)),
              cell(String(instance.writesInFlight))
            )
            return tr
          }))
          const live = data.instances.filter(function (i) { return !i.stale })
          const isQuiet = live.every(function (i) { return i.applied && i.writesInFlight === 0 })
          quiet.className = 'quiet-status ' + (isQuiet ? 'quiet' : 'busy')
          quiet.textContent = isQuiet
            ? 'Quiet: every instance enforces version ' + data.version + ' and no write is in flight.'
            : 'Not quiet yet: an instance has not applied version ' + data.version + ', or writes are still in flight.'
        })
        .catch(function () {})
    }
    setInterval(refresh, 2000)
  }
})()
