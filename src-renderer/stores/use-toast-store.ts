import { create } from 'zustand'

export type Toast = { id: number; tone: 'ok' | 'bad' | 'info'; text: string }

type ToastState = {
  toasts: Toast[]
  show: (tone: Toast['tone'], text: string) => void
  dismiss: (id: number) => void
}

let nextId = 1

/** Short notices after an action ("Mapping saved"); errors stay until dismissed. */
export const useToastStore = create<ToastState>()((set, get) => ({
  toasts: [],
  show: (tone, text) => {
    const id = nextId++
    set({ toasts: [...get().toasts.slice(-3), { id, tone, text }] })
    if (tone !== 'bad') setTimeout(() => get().dismiss(id), 5000)
  },
  dismiss: (id) => set({ toasts: get().toasts.filter((t) => t.id !== id) }),
}))
